"""ReconcileStuckPayments: settle payments left PROCESSING by asking the gateway."""

from __future__ import annotations

import logging

from service.commands.messages import ReconcileStuckPayments
from service.commands.settlement import SETTLED_STATUS
from service.db.unit_of_work import UnitOfWork
from service.domain.model import Payment
from service.gateway import GatewayDecision, PaymentGateway
from service.metrics import PAYMENTS_RECONCILED

log = logging.getLogger(__name__)


async def reconcile_stuck_payments(
    command: ReconcileStuckPayments, uow: UnitOfWork, gateway: PaymentGateway
) -> list[Payment]:
    """Settle what the gateway has decided; return the payments settled now.

    No lock is held while the gateway is asked: settling only applies to a
    payment still PROCESSING, so a concurrent settlement simply wins.
    """
    async with uow.connection() as session:
        stuck = await session.stuck_processing(command.older_than_seconds, command.max_payments)
    settled: list[Payment] = []
    for payment in stuck:
        try:
            decision = await gateway.status(
                payment.transaction_id, payment.order_id, payment.amount
            )
        except Exception as exc:
            log.warning("gateway status failed for payment %s: %r", payment.id, exc)
            decision = GatewayDecision.PENDING
        async with uow.connection() as session:
            if decision is GatewayDecision.PENDING:
                # Asked and still open: move it behind the others for the next round.
                await session.mark_reconcile_checked(payment.id)
                continue
            result = await session.settle(payment.id, SETTLED_STATUS[decision], "reconciler")
        if result is not None:
            log.info("reconciled payment %s as %s", payment.id, result.status)
            PAYMENTS_RECONCILED.labels(result.status.lower()).inc()
            settled.append(result)
    return settled
