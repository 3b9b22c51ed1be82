"""Periodic background work of each service process (reconciler, key expiry)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from service.db.errors import DATABASE_DOWN

log = logging.getLogger(__name__)


async def every(
    interval_seconds: float, work: Callable[[], Awaitable[object]], stop: asyncio.Event
) -> None:
    """Run `work` now and then every interval until `stop` is set.

    A failing round (the database may be down) is logged and retried next round.
    Every process runs these; each piece of work is safe to run concurrently.
    """
    while not stop.is_set():
        name = getattr(work, "__name__", work)
        try:
            await work()
        except DATABASE_DOWN as exc:
            # Expected while the database is down: one line a round, not a traceback.
            log.warning("background round of %s failed, database unavailable: %r", name, exc)
        except Exception:
            log.warning("background round of %s failed", name, exc_info=True)
        # Not asyncio.wait_for: on Python 3.11 it can swallow the cancellation of
        # a task stopped at shut-down, which then keeps running.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval_seconds):
                await stop.wait()
