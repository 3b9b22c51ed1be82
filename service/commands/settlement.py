"""Settling a PROCESSING payment: shared by create, gateway callbacks and the reconciler."""

from __future__ import annotations

from service.commands.results import PaymentRecord
from service.db.unit_of_work import UnitOfWork
from service.domain.rules import PaymentStatus
from service.gateway import GatewayDecision

SETTLED_STATUS = {
    GatewayDecision.APPROVED: PaymentStatus.COMPLETED,
    GatewayDecision.DECLINED: PaymentStatus.FAILED,
}


async def settle(
    uow: UnitOfWork, payment_id: int, status: PaymentStatus, request_id: str | None
) -> PaymentRecord | None:
    """Set COMPLETED or FAILED and queue the order webhook, atomically.

    None when the payment was no longer PROCESSING: someone else settled it,
    and that settlement (with its one outbox row) stands.
    """
    async with uow.connection() as connection:
        row = await uow.sql.settle_payment(
            connection, payment_id=payment_id, status=status.value, request_id=request_id
        )
    if row is None:
        return None
    uow.outbox_committed()
    return PaymentRecord.from_row(row)
