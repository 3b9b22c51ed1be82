"""`payments relay`: an outbox relay as a process of its own."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from service.db.embedded import database_url
from service.db.pool import direct_url
from service.db.sql import load_queries
from service.settings import load_settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@click.command("relay")
def relay_command() -> None:
    """Run an outbox relay until SIGINT or SIGTERM."""
    from service.db.migrate import migrate
    from service.log_config import configure_logging
    from service.outbox.relay import start_relay

    configure_logging()
    settings = load_settings()
    if not settings.order_service.webhook_secret:
        log.warning("PAYMENTS_WEBHOOK_SECRET is not set: order webhooks are sent unsigned")
    url = database_url(settings.database)

    async def run() -> bool:
        if settings.database.migrate_on_start:
            await migrate(
                direct_url(settings.database, url),
                lock_timeout=settings.database.migration_lock_timeout_seconds,
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        handle = await start_relay(url, load_queries(), settings)
        stopping = asyncio.create_task(stop.wait())
        # A crashed relay is restarted by its handle; should the handle itself fail (a
        # bug), the command ends too, as a failure (exit 1), so that whatever supervises
        # it (payments serve, systemd) starts it again.
        await asyncio.wait({stopping, handle.task}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        await handle.stop()
        return not stop.is_set()

    if _event_loop_runner()(run()):
        sys.exit(1)


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, T]], T]:
    """uvloop where it is installed (as granian runs the workers), else asyncio's loop:
    a relay process is mostly event loop, and uvloop's costs it less per webhook."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
