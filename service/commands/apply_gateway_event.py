"""ApplyGatewayEvent: a verified gateway callback settles a PROCESSING payment."""

from __future__ import annotations

from service.commands.messages import ApplyGatewayEvent
from service.commands.results import PaymentRecord
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import PaymentNotFound
from service.domain.rules import PaymentStatus, gateway_outcome_applies

REPORTED_STATUS = {"completed": PaymentStatus.COMPLETED, "failed": PaymentStatus.FAILED}


async def apply_gateway_event(command: ApplyGatewayEvent, uow: UnitOfWork) -> PaymentRecord:
    """Apply the callback once per webhook-id; a repeat or a no-change report is a no-op."""
    reported = REPORTED_STATUS[command.status]
    async with uow.transaction() as connection:
        row = await uow.sql.lock_payment_by_transaction(
            connection, transaction_id=command.transaction_id
        )
        if row is None:
            raise PaymentNotFound(f"no payment has transaction_id {command.transaction_id}")
        payment = PaymentRecord.from_row(row)
        first_delivery = await uow.sql.record_gateway_event(
            connection,
            webhook_id=command.webhook_id,
            transaction_id=command.transaction_id,
            status=command.status,
        )
        if first_delivery is None:
            return payment
        if not gateway_outcome_applies(PaymentStatus(payment.status), reported):
            return payment
        settled = await uow.sql.settle_payment(
            connection,
            payment_id=payment.id,
            status=reported.value,
            request_id=command.request_id,
        )
    uow.outbox_committed()
    # The row lock held since the lookup above guarantees the update applied.
    return PaymentRecord.from_row(settled)
