"""RefundPayment: full refunds of COMPLETED payments, exactly once."""

from __future__ import annotations

import logging

from service.commands.messages import RefundPayment
from service.commands.results import RefundRecord
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import PaymentNotFound
from service.domain.rules import PaymentStatus, refund_amount, refund_reason, refund_refusal
from service.metrics import REFUNDS

log = logging.getLogger(__name__)


async def refund_payment(command: RefundPayment, uow: UnitOfWork) -> RefundRecord:
    reason = refund_reason(command.reason)
    amount = refund_amount(command.amount)
    async with uow.connection() as connection:
        # One statement: REFUNDED, the refund row and the outbox row, or nothing.
        row = await uow.sql.refund_payment(
            connection,
            payment_id=command.payment_id,
            amount=amount,
            reason=reason,
            request_id=command.request_id,
        )
        if row is not None:
            uow.outbox_committed()
            REFUNDS.inc()
            log.info(
                "payment %s refunded", command.payment_id, extra={"payment_id": command.payment_id}
            )
            return RefundRecord.from_row(row)
        payment = await uow.sql.find_payment(connection, payment_id=command.payment_id)
    if payment is None:
        raise PaymentNotFound(f"payment {command.payment_id} does not exist")
    raise refund_refusal(PaymentStatus(payment["status"]), payment["amount"], amount)
