"""RefundPayment: full refunds of COMPLETED payments, exactly once.

One statement today: REFUNDED, the refund row and the order webhook together. A refund is
a charge in the other direction; through a real gateway it takes charging's shape (commit
the refund PENDING, ask the gateway, settle it with the webhook).
"""

from __future__ import annotations

import logging

from service.commands.messages import RefundPayment
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import PaymentNotFound
from service.domain.model import Refund
from service.domain.rules import (
    could_be_a_payment_amount,
    refund_amount,
    refund_reason,
    refund_refusal,
)
from service.metrics import REFUNDS
from service.request_context import current_request_id

log = logging.getLogger(__name__)


async def refund_payment(command: RefundPayment, uow: UnitOfWork) -> Refund:
    reason = refund_reason(command.reason)
    amount = refund_amount(command.amount)
    async with uow.connection() as session:
        # An amount no payment can have would not refund anything: only the refusal
        # (not found, not refundable, or the amount) is looked up.
        if amount is None or could_be_a_payment_amount(amount):
            # One statement: REFUNDED, the refund row and the outbox row, or nothing.
            refund = await session.refund(command.payment_id, amount, reason, current_request_id())
            if refund is not None:
                REFUNDS.inc()
                log.info(
                    "payment %s refunded",
                    command.payment_id,
                    extra={"payment_id": command.payment_id},
                )
                return refund
        payment = await session.find_payment(command.payment_id)
    if payment is None:
        raise PaymentNotFound(f"payment {command.payment_id} does not exist")
    raise refund_refusal(payment.status, payment.amount, amount)
