"""Start-up and shut-down: database, pool, gateway, and the background tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar

from service.db.embedded import embedded_url
from service.db.migrate import migrate
from service.db.pool import create_pool
from service.db.unit_of_work import UnitOfWork
from service.gateway import SimulatedGateway
from service.reconciler import run_reconciler
from service.settings import Settings

log = logging.getLogger(__name__)


def database_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started on demand)."""
    return settings.database.url or embedded_url(settings.database.embedded_dir)


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if not settings.order_service.webhook_secret:
        log.warning("PAYMENTS_WEBHOOK_SECRET is not set: order webhooks are sent unsigned")
    if not settings.gateway.callback_secret:
        log.warning("PAYMENTS_GATEWAY_SECRET is not set: every gateway callback is refused")
    url = database_url(settings)
    if settings.database.migrate_on_start:
        await migrate(url)
    pool = await create_pool(url, settings.database)
    uow = UnitOfWork(pool)
    gateway = SimulatedGateway(settings.gateway)
    app.state.update(pool=pool, uow=uow, gateway=gateway, database_url=url)

    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_reconciler(uow, gateway, settings.gateway, stop))]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pool.close()
