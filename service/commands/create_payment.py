"""CreatePayment: the design's sequence (section 4)."""

from __future__ import annotations

import logging

from service.commands.attempts import Attempt, declined, earlier_payments
from service.commands.messages import CreatePayment
from service.commands.settlement import SETTLED_STATUS
from service.db.session import NewPayment, Settlement
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import DuplicateOrder, GatewayUnavailable
from service.domain.model import Payment
from service.domain.rules import payment_amount
from service.gateway import GatewayDecision, PaymentGateway
from service.metrics import PAYMENTS

log = logging.getLogger(__name__)


async def create_payment(
    command: CreatePayment,
    uow: UnitOfWork,
    gateway: PaymentGateway,
    attempt: Attempt | None = None,
) -> Payment:
    """Insert PROCESSING and commit; ask the gateway; settle with the outbox row.

    The PROCESSING row is committed before the gateway is asked, so a crash in
    between leaves a trace the reconciler settles, never a charge without a record.
    A retry (`attempt`) of a create that made its payment answers with that payment
    as it stands, without asking the gateway again (the reconciler settles it).
    """
    amount = payment_amount(command.amount, command.currency)
    earlier = (await earlier_payments(uow, attempt)).get(command.order_id)
    if earlier is not None:
        return _answer(earlier)
    payment = await uow.insert_processing(NewPayment(command.order_id, amount, command.currency))
    if payment is None:
        raise DuplicateOrder(
            f"order {command.order_id} already has a payment", order_id=command.order_id
        )
    if attempt is not None:
        await attempt.payments_created([payment.id])

    try:
        decision = await gateway.charge(payment.transaction_id, payment.order_id, payment.amount)
    except Exception as exc:
        log.warning("gateway failed for payment %s: %r", payment.id, exc)
        raise GatewayUnavailable(
            "the payment gateway did not answer; the payment stays PROCESSING and will be "
            "settled by reconciliation",
            payment_id=payment.id,
        ) from exc
    if decision is GatewayDecision.PENDING:
        PAYMENTS.labels("processing").inc()
        return payment

    settled = await uow.settle(Settlement(payment.id, SETTLED_STATUS[decision], command.request_id))
    if settled is None:
        # A gateway callback or the reconciler settled it first; report that outcome.
        async with uow.connection() as session:
            settled = await session.find_payment(payment.id)
    assert settled is not None  # payments are never deleted
    PAYMENTS.labels(settled.status.lower()).inc()
    log.info(
        "payment %s of order %s %s",
        settled.id,
        settled.order_id,
        settled.status,
        extra={"payment_id": settled.id, "order_id": settled.order_id, "status": settled.status},
    )
    return _answer(settled)


def _answer(payment: Payment) -> Payment:
    error = declined(payment)
    if error is not None:
        raise error
    return payment
