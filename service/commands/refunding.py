"""RefundPayment: full refunds of COMPLETED payments, through the gateway, exactly once.

A refund is a charge in the other direction, and goes through the same two commits
around the gateway (nothing is held open across its call):

1. commit the refund PENDING (the payment stays COMPLETED; a second refund of it is
   refused while this one is PENDING);
2. ask the gateway to refund, under the refund's own id;
3. settle what it said in one statement: COMPLETED with the payment's move to REFUNDED
   and the `refunded` order webhook; FAILED with why (the payment stays COMPLETED and may
   be refunded again); PENDING with the gateway's reference, when it decides later (its
   event or the reconciler settles it). No answer leaves it PENDING for the reconciler.
"""

from __future__ import annotations

import logging

from service.commands.messages import RefundPayment
from service.db.session import RefundInFlight, RefundSettlement
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import GatewayUnavailable, PaymentNotFound, RefundFailed
from service.domain.failures import failure_message
from service.domain.model import Refund, RefundStatus
from service.domain.rules import (
    could_be_a_payment_amount,
    refund_amount,
    refund_reason,
    refund_refusal,
)
from service.gateway import Gateway, RefundDecision, RefundOutcome, RefundRequest
from service.metrics import REFUNDS
from service.request_context import current_request_id

log = logging.getLogger(__name__)

# The refund's status once the gateway has said so.
STATUS_OF = {
    RefundOutcome.SUCCEEDED: RefundStatus.COMPLETED,
    RefundOutcome.FAILED: RefundStatus.FAILED,
    RefundOutcome.PENDING: RefundStatus.PENDING,
}
# A refusal without a reason of its own.
GENERIC_REFUND_FAILURE = "refund_failed"


async def refund_payment(command: RefundPayment, uow: UnitOfWork, gateway: Gateway) -> Refund:
    """The refund as the gateway leaves it: COMPLETED, or PENDING (it decides later).
    Raises RefundFailed (402) when it refused, GatewayUnavailable (503) when it did not
    answer (the refund stays PENDING), and the refusals of a payment that cannot be
    refunded (404, 400)."""
    reason = refund_reason(command.reason)
    amount = refund_amount(command.amount)
    started: RefundInFlight | None = None
    async with uow.connection() as session:
        # An amount no payment can have would not refund anything: only the refusal
        # (not found, not refundable, or the amount) is looked up.
        if amount is None or could_be_a_payment_amount(amount):
            started = await session.start_refund(
                command.payment_id, amount, reason, current_request_id()
            )
        if started is None:
            payment = await session.find_payment(command.payment_id)
            in_progress = await session.live_refund_of_payment(command.payment_id)
    if started is None:
        if payment is None:
            raise PaymentNotFound(f"payment {command.payment_id} does not exist")
        raise refund_refusal(payment.status, payment.amount, amount, in_progress)

    refund = started.refund
    try:
        decision = await gateway.refund(refund_request(started))
    except Exception as exc:
        log.warning("gateway failed for refund %s: %r", refund.id, exc)
        raise GatewayUnavailable(
            "the payment gateway did not answer; the refund stays PENDING and will be "
            "settled by reconciliation",
            payment_id=refund.payment_id,
            refund_id=refund.id,
        ) from exc
    async with uow.connection() as session:
        settled = await session.settle_refunds([refund_settlement_of(refund, decision)])
        if not settled:  # the gateway's event settled it first: that stands
            settled = await session.find_refunds([refund.id])
    return answer(settled[0])


def answer(refund: Refund) -> Refund:
    """The refund as its request answers: 201 COMPLETED, 202 PENDING, or the 402 of a
    FAILED one naming the refund and why."""
    if refund.status is RefundStatus.FAILED:
        raise RefundFailed(
            "the payment gateway refused the refund; the payment stays COMPLETED",
            refund_id=refund.id,
            payment_id=refund.payment_id,
            failure_code=refund.failure_code,
            failure_message=refund.failure_message,
        )
    if refund.status is RefundStatus.COMPLETED:
        REFUNDS.inc()
        log.info("payment %s refunded", refund.payment_id, extra={"payment_id": refund.payment_id})
    return refund


def refund_request(refund: RefundInFlight) -> RefundRequest:
    """What the gateway is asked about the refund."""
    return RefundRequest(
        refund_id=refund.refund.id,
        payment_id=refund.refund.payment_id,
        order_id=refund.order_id,
        amount=refund.refund.amount,
        charge_reference=refund.charge_reference,
        transaction_id=refund.transaction_id,
        reference=refund.reference,
    )


def refund_settlement_of(refund: Refund, decision: RefundDecision) -> RefundSettlement:
    """The settlement of the refund the gateway's word asks for: a refusal with its code
    (the generic one when the gateway gave none) and a message for people."""
    status = STATUS_OF[decision.outcome]
    if status is not RefundStatus.FAILED:
        return RefundSettlement(refund.id, status, decision.reference)
    code = decision.failure_code or GENERIC_REFUND_FAILURE
    message = decision.failure_message or failure_message(code)
    return RefundSettlement(refund.id, status, decision.reference, code, message)
