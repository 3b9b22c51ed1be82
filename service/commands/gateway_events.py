"""ApplyGatewayEvent: the gateway's verified word, later, on a charge attempt or a refund
(a Stripe event; the simulator's signed callback)."""

from __future__ import annotations

import logging

from service.commands.charging import STATUS_OF, settlement_of
from service.commands.messages import ApplyGatewayEvent
from service.commands.refunding import refund_settlement_of
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import PaymentNotFound
from service.domain.model import Payment, Refund
from service.domain.rules import gateway_outcome_applies, superseded_attempt_applies
from service.gateway import ChargeDecision, GatewayEvent, RefundDecision
from service.metrics import GATEWAY_CALLBACKS
from service.request_context import current_request_id

log = logging.getLogger(__name__)


async def apply_gateway_event(command: ApplyGatewayEvent, uow: UnitOfWork) -> Payment | Refund:
    """Apply the event once per event id; a repeat or a no-change report is a no-op.
    Raises PaymentNotFound when it is about no charge attempt of the service's.

    A no-change report includes "completed" for a payment refunded since: its latest
    attempt's charge did complete, and the refund came after. "failed" for it is 409.

    An event naming an attempt a retry has superseded (an earlier transaction_id of the
    payment) never changes the payment: it is found (not 404: the transaction is known),
    reporting the outcome that attempt ended with is a no-op like any repeated report,
    and another outcome is 409, since that attempt's outcome is final and the payment
    now belongs to its newer attempt. Only FAILED attempts are retried, so "completed"
    for a superseded attempt stays 409 whatever the payment is now, REFUNDED included:
    that charge never completed.
    """
    event = command.event
    if event.charge is not None:
        return await _apply_charge(event, event.charge, uow)
    assert event.refund is not None
    return await _apply_refund(event, event.refund, uow)


async def _apply_charge(event: GatewayEvent, decision: ChargeDecision, uow: UnitOfWork) -> Payment:
    reported = STATUS_OF[decision.outcome]
    async with uow.transaction() as session:
        found = await session.lock_payment_by_transaction(event.transaction_id)
        if found is None:
            raise PaymentNotFound(f"no payment has transaction_id {event.transaction_id}")
        payment, attempt_status = found
        first_delivery = await session.record_gateway_event(
            event.event_id, event.transaction_id, f"charge {decision.outcome}"
        )
        if not first_delivery:
            GATEWAY_CALLBACKS.labels("repeated").inc()
            return payment
        if payment.transaction_id != event.transaction_id:
            applies = superseded_attempt_applies(attempt_status, reported)
        else:
            applies = gateway_outcome_applies(payment.status, reported)
        if not applies:
            GATEWAY_CALLBACKS.labels("unchanged").inc()
            return payment
        settlement = settlement_of(payment, decision, current_request_id())
        [settled] = await session.settle_many([settlement])
    # The row lock held since the lookup above guarantees the settlement applied.
    GATEWAY_CALLBACKS.labels("applied").inc()
    return settled


async def _apply_refund(event: GatewayEvent, decision: RefundDecision, uow: UnitOfWork) -> Refund:
    async with uow.transaction() as session:
        found = await session.lock_refund_of_event(event.transaction_id, event.refund_id)
        if found is None:
            raise PaymentNotFound(
                f"no refund of the payment of transaction_id {event.transaction_id} is "
                f"{'known' if event.refund_id is None else f'numbered {event.refund_id}'}"
            )
        first_delivery = await session.record_gateway_event(
            event.event_id, event.transaction_id, f"refund {decision.outcome}"
        )
        refund = found.refund
        if not first_delivery or refund.status != "PENDING":
            # Repeated, or settled before (by the answer or the reconciler): it stands.
            GATEWAY_CALLBACKS.labels("repeated" if not first_delivery else "unchanged").inc()
            return refund
        settled = await session.settle_refunds([refund_settlement_of(refund, decision)])
    GATEWAY_CALLBACKS.labels("applied").inc()
    log.info("refund %s of payment %s %s", refund.id, refund.payment_id, settled[0].status)
    return settled[0]
