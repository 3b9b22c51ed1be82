"""What a gateway decision makes of a PROCESSING payment's attempt, and the one sequence
that asks for it and settles: a create's second half, and a retry's."""

from __future__ import annotations

import logging

from service.db.session import Settlement
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import GatewayUnavailable
from service.domain.failures import GENERIC_DECLINE, failure_message
from service.domain.model import Payment
from service.domain.rules import PaymentStatus
from service.gateway import GatewayDecision, GatewayOutcome, PaymentGateway

log = logging.getLogger(__name__)

SETTLED_STATUS = {
    GatewayOutcome.APPROVED: PaymentStatus.COMPLETED,
    GatewayOutcome.DECLINED: PaymentStatus.FAILED,
}


def settlement_of(
    payment: Payment, decision: GatewayDecision, request_id: str | None
) -> Settlement:
    """The settlement of the payment's current attempt that a decided answer asks for: a
    decline with its code (the generic one when the gateway gave none) and the gateway's
    message, or the service's own for that code."""
    status = SETTLED_STATUS[decision.outcome]
    if status is PaymentStatus.COMPLETED:
        return Settlement(payment.id, payment.transaction_id, status, request_id)
    code = decision.failure_code or GENERIC_DECLINE
    message = decision.failure_message or failure_message(code)
    return Settlement(payment.id, payment.transaction_id, status, request_id, code, message)


def gateway_unavailable(payment: Payment, exc: BaseException) -> GatewayUnavailable:
    log.warning("gateway failed for payment %s: %r", payment.id, exc)
    return GatewayUnavailable(
        "the payment gateway did not answer; the payment stays PROCESSING and will be "
        "settled by reconciliation",
        payment_id=payment.id,
    )


async def charge_and_settle(
    payment: Payment, uow: UnitOfWork, gateway: PaymentGateway, request_id: str | None
) -> Payment:
    """Ask the gateway to charge the committed PROCESSING attempt; settle it with its
    outbox row (group commit). PENDING (an asynchronous gateway) leaves it PROCESSING;
    no answer is GatewayUnavailable, the reconciler settles it."""
    try:
        decision = await gateway.charge(payment.transaction_id, payment.order_id, payment.amount)
    except Exception as exc:
        raise gateway_unavailable(payment, exc) from exc
    if decision.outcome is GatewayOutcome.PENDING:
        return payment

    settled = await uow.settle(settlement_of(payment, decision, request_id))
    if settled is None:
        # A gateway callback or the reconciler settled it first; report that outcome.
        async with uow.connection() as session:
            settled = await session.find_payment(payment.id)
    assert settled is not None  # payments are never deleted
    return settled


def log_outcome(payment: Payment, logger: logging.Logger) -> None:
    """The line a create or a retry logs for its payment, by its own logger."""
    fields = {"payment_id": payment.id, "order_id": payment.order_id, "status": payment.status}
    logger.info("payment %s of order %s %s", *fields.values(), extra=fields)
