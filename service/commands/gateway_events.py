"""ApplyGatewayEvent: a verified gateway callback settles a PROCESSING payment."""

from __future__ import annotations

from service.commands.charging import settlement_of
from service.commands.messages import ApplyGatewayEvent
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import PaymentNotFound
from service.domain.model import Payment
from service.domain.rules import (
    PaymentStatus,
    gateway_outcome_applies,
    superseded_attempt_applies,
)
from service.gateway import ChargeDecision
from service.metrics import GATEWAY_CALLBACKS
from service.request_context import current_request_id

REPORTED_STATUS = {"completed": PaymentStatus.COMPLETED, "failed": PaymentStatus.FAILED}
# A callback says only "failed": the decline gets the generic code (card_declined,
# service/domain/failures.py) and its message.
REPORTED_DECISION = {"completed": ChargeDecision.APPROVED, "failed": ChargeDecision.DECLINED}


async def apply_gateway_event(command: ApplyGatewayEvent, uow: UnitOfWork) -> Payment:
    """Apply the callback once per webhook-id; a repeat or a no-change report is a no-op.

    A no-change report includes "completed" for a payment refunded since: its latest
    attempt's charge did complete, and the refund came after. "failed" for it is 409.

    A callback naming an attempt a retry has superseded (an earlier transaction_id of
    the payment) never changes the payment: it is found (not 404: the transaction is
    known), reporting the outcome that attempt ended with is a 200 no-op like any
    repeated report, and another outcome is 409, since that attempt's outcome is final
    and the payment now belongs to its newer attempt. Only FAILED attempts are retried,
    so "completed" for a superseded attempt stays 409 whatever the payment is now,
    REFUNDED included: that charge never completed.
    """
    reported = REPORTED_STATUS[command.status]
    async with uow.transaction() as session:
        found = await session.lock_payment_by_transaction(command.transaction_id)
        if found is None:
            raise PaymentNotFound(f"no payment has transaction_id {command.transaction_id}")
        payment, attempt_status = found
        first_delivery = await session.record_gateway_event(
            command.webhook_id, command.transaction_id, command.status
        )
        if not first_delivery:
            GATEWAY_CALLBACKS.labels("repeated").inc()
            return payment
        if payment.transaction_id != command.transaction_id:
            applies = superseded_attempt_applies(attempt_status, reported)
        else:
            applies = gateway_outcome_applies(payment.status, reported)
        if not applies:
            GATEWAY_CALLBACKS.labels("unchanged").inc()
            return payment
        decision = REPORTED_DECISION[command.status]
        settlement = settlement_of(payment, decision, current_request_id())
        [settled] = await session.settle_many([settlement])
    # The row lock held since the lookup above guarantees the settlement applied.
    GATEWAY_CALLBACKS.labels("applied").inc()
    return settled
