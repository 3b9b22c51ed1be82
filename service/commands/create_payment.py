"""CreatePayment: the design's sequence (section 4)."""

from __future__ import annotations

import logging

from service.commands.attempts import Attempt, answer, claimed_key, earlier_payments
from service.commands.messages import CreatePayment
from service.commands.settlement import charge_and_settle, log_outcome
from service.db.session import NewPayment
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import DuplicateOrder
from service.domain.model import Payment
from service.domain.rules import payment_amount
from service.gateway import PaymentGateway
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
        return answer(earlier)
    payment = await uow.insert_processing(
        NewPayment(command.order_id, amount, command.currency, claimed_key(attempt))
    )
    if payment is None:
        raise DuplicateOrder(
            f"order {command.order_id} already has a payment", order_id=command.order_id
        )
    payment = await charge_and_settle(payment, uow, gateway, command.request_id)
    # Creates only: a retry's attempt is not a payment created.
    PAYMENTS.labels(payment.status.lower()).inc()
    log_outcome(payment, log)
    return answer(payment)
