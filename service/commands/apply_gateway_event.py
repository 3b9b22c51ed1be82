"""ApplyGatewayEvent: a verified gateway callback settles a PROCESSING payment."""

from __future__ import annotations

from service.commands.messages import ApplyGatewayEvent
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import PaymentNotFound
from service.domain.model import Payment
from service.domain.rules import PaymentStatus, gateway_outcome_applies
from service.metrics import GATEWAY_CALLBACKS

REPORTED_STATUS = {"completed": PaymentStatus.COMPLETED, "failed": PaymentStatus.FAILED}


async def apply_gateway_event(command: ApplyGatewayEvent, uow: UnitOfWork) -> Payment:
    """Apply the callback once per webhook-id; a repeat or a no-change report is a no-op."""
    reported = REPORTED_STATUS[command.status]
    async with uow.transaction() as session:
        payment = await session.lock_payment_by_transaction(command.transaction_id)
        if payment is None:
            raise PaymentNotFound(f"no payment has transaction_id {command.transaction_id}")
        first_delivery = await session.record_gateway_event(
            command.webhook_id, command.transaction_id, command.status
        )
        if not first_delivery:
            GATEWAY_CALLBACKS.labels("repeated").inc()
            return payment
        if not gateway_outcome_applies(payment.status, reported):
            GATEWAY_CALLBACKS.labels("unchanged").inc()
            return payment
        settled = await session.settle(payment.id, reported, command.request_id)
    # The row lock held since the lookup above guarantees the settlement applied.
    assert settled is not None
    GATEWAY_CALLBACKS.labels("applied").inc()
    return settled
