"""Start-up and shut-down: database, pool, gateway, and the background tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import msgspec
from litestar import Litestar

from service.api.dependencies import ReadSide, WriteSide
from service.commands import ReconcileStuckPayments
from service.commands.reconciliation import reconcile_stuck_payments
from service.db.database import Database
from service.db.embedded import database_url, detach_embedded
from service.db.housekeeping import HOUSEKEEPING_INTERVAL_SECONDS, purge_expired
from service.db.migrate import migrate
from service.db.periodic import every
from service.db.pool import create_pool, direct_url
from service.db.reader import Reader
from service.db.replica_probe import ReplicaProbe
from service.db.sql import load_queries
from service.db.unit_of_work import UnitOfWork
from service.gateway import configured_gateway
from service.outbox import start_relay
from service.outbox.wakeup import OutboxWakeup
from service.queries.outbox_health import SharedBacklog
from service.settings import DatabaseSettings, Settings

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if not settings.order_service.webhook_secrets:
        log.warning("PAYMENTS_WEBHOOK_SECRET is not set: order webhooks are sent unsigned")
    if settings.gateway.kind == "simulator" and not settings.gateway.callback_secrets:
        log.warning("PAYMENTS_GATEWAY_SECRET is not set: every gateway callback is refused")
    if settings.gateway.kind == "stripe" and not settings.gateway.stripe_webhook_secrets:
        log.warning("PAYMENTS_STRIPE_WEBHOOK_SECRET is not set: every Stripe event is refused")
    # Each resource is released (last first) however far start-up got: a failed step
    # must not leave pools open or the embedded PostgreSQL running.
    async with AsyncExitStack() as resources:
        url = database_url(settings.database)
        resources.callback(detach_embedded)
        if settings.database.migrate_on_start:
            await migrate(
                direct_url(settings.database, url),
                lock_timeout=settings.database.migration_lock_timeout_seconds,
            )
        queries = load_queries()
        db = Database(await create_pool(url, settings.database), queries)
        resources.push_async_callback(db.pool.close)
        reader = await open_reader(db, settings.database)
        if reader.replica is not None:
            resources.push_async_callback(reader.replica.close)
        async with _serving(app, settings, url, db, reader):
            yield


@asynccontextmanager
async def _serving(
    app: Litestar, settings: Settings, url: str, db: Database, reader: Reader
) -> AsyncIterator[None]:
    """The write and read sides, the in-process relay and the periodic work, on open pools."""
    queries = db.queries
    wakeup = OutboxWakeup()
    uow = UnitOfWork(db.pool, queries, on_webhooks_queued=wakeup.committed)
    gateway = configured_gateway(settings.gateway)
    relay = await start_relay(url, queries, settings) if settings.outbox.relay_in_process else None
    if relay is not None:
        # This process's relay hears of its commits directly, not through a NOTIFY.
        wakeup.subscribe(relay.relay.wake)
    app.state.update(
        write_side=WriteSide(uow=uow, gateway=gateway, settings=settings),
        read_side=ReadSide(
            backlog=SharedBacklog(reader), reader=reader, settings=settings, relay=relay
        ),
    )

    stop = asyncio.Event()
    reconcile = ReconcileStuckPayments(
        older_than_seconds=settings.gateway.reconcile_after_seconds,
        # One round per interval per process: a claim lasts until the next round.
        lease_seconds=settings.gateway.reconcile_interval_seconds,
        manual_review_after_seconds=settings.gateway.manual_review_after_seconds,
        authentication_timeout_seconds=settings.gateway.authentication_timeout_seconds,
    )

    async def reconcile_stuck() -> None:
        await reconcile_stuck_payments(reconcile, uow, gateway)

    async def housekeeping() -> None:
        await purge_expired(queries, db.pool, settings.gateway.callback_retention_days)

    tasks = [
        asyncio.create_task(
            every(settings.gateway.reconcile_interval_seconds, reconcile_stuck, stop)
        ),
        asyncio.create_task(
            every(HOUSEKEEPING_INTERVAL_SECONDS, housekeeping, stop, housekeeping=True)
        ),
    ]
    if reader.replica is not None:
        probe = ReplicaProbe(
            reader,
            max_lag_seconds=settings.database.read_max_lag_seconds,
            timeout=settings.database.command_timeout,
        )
        interval = settings.database.read_probe_interval_seconds
        tasks.append(asyncio.create_task(every(interval, probe.check, stop)))
    notifier = asyncio.create_task(wakeup.notify_other_processes(db))
    try:
        yield
    finally:
        stop.set()
        if relay is not None:
            await relay.stop()
        notifier.cancel()
        await asyncio.gather(*tasks, notifier, return_exceptions=True)
        await gateway.aclose()


async def open_reader(db: Database, settings: DatabaseSettings) -> Reader:
    """The read side's pools: the primary's, and a replica's when `read_url` is set."""
    if not settings.read_url:
        return Reader(db.pool, db.queries)
    # No connection until the first read or probe: a replica that is down must not
    # keep the service from starting (reads go to the primary meanwhile).
    lazy = msgspec.structs.replace(settings, pool_min_size=0)
    return Reader(db.pool, db.queries, replica=await create_pool(settings.read_url, lazy))
