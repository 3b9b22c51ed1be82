"""RetryPayment: a declined order paid after all, by its one payment's next attempt."""

from __future__ import annotations

import logging

from service.commands.attempts import Attempt, answer, claimed_key, earlier_payments
from service.commands.messages import RetryPayment
from service.commands.settlement import charge_and_settle, log_outcome
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import PaymentNotFound
from service.domain.model import Payment
from service.domain.rules import retry_refusal
from service.gateway import PaymentGateway

log = logging.getLogger(__name__)


async def retry_payment(
    command: RetryPayment,
    uow: UnitOfWork,
    gateway: PaymentGateway,
    attempt: Attempt | None = None,
) -> Payment:
    """FAILED back to PROCESSING under a new transaction_id, committed; ask the gateway;
    settle with the outbox row: the create's sequence, for the payment's next attempt.

    The first step is a compare-and-set on FAILED, so of two concurrent retries one
    runs and the other is NotRetryable. A retry of this request (`attempt`, an
    Idempotency-Key) whose first try started the attempt answers with the payment as
    it stands, without asking the gateway again (the reconciler settles it), as a
    create's does.
    """
    earlier = await earlier_payments(uow, attempt)
    for started in earlier.values():
        if started.id == command.payment_id:
            return answer(started)
    async with uow.connection() as session:
        payment = await session.start_retry(command.payment_id, claimed_key(attempt))
        current = await session.find_payment(command.payment_id) if payment is None else None
    if payment is None:
        if current is None:
            raise PaymentNotFound(f"payment {command.payment_id} does not exist")
        raise retry_refusal(current.status)
    fields = {"payment_id": payment.id, "order_id": payment.order_id}
    log.info("payment %s of order %s retried", *fields.values(), extra=fields)
    payment = await charge_and_settle(payment, uow, gateway, command.request_id)
    log_outcome(payment, log)
    return answer(payment)
