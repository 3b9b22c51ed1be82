"""The background loop that settles payments left PROCESSING."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from service.commands import ReconcileStuckPayments
from service.commands.reconcile_payments import reconcile_stuck_payments
from service.db.unit_of_work import UnitOfWork
from service.gateway import PaymentGateway
from service.settings import GatewaySettings

log = logging.getLogger(__name__)


async def run_reconciler(
    uow: UnitOfWork, gateway: PaymentGateway, settings: GatewaySettings, stop: asyncio.Event
) -> None:
    """Every interval, settle what has been PROCESSING longer than the configured age.

    Runs in every service process; settling is idempotent, so several at once are safe.
    """
    command = ReconcileStuckPayments(older_than_seconds=settings.reconcile_after_seconds)
    while not stop.is_set():
        try:
            await reconcile_stuck_payments(command, uow, gateway)
        except Exception:  # the database may be down; try again next round
            log.warning("reconciliation round failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.reconcile_interval_seconds)
