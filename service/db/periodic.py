"""The one periodic loop: background work that must outlive database outages
(reconciler, housekeeping, outbox retention)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from service.db.errors import DATABASE_DOWN
from service.waiting import wait_for_event

log = logging.getLogger(__name__)


async def every(
    interval_seconds: float,
    work: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    *,
    housekeeping: bool = False,
) -> None:
    """Run `work` now and then every interval until `stop` is set.

    Housekeeping (deleting what has expired) runs first at a random point of its
    first interval instead: instances started together (a deploy, a restart after
    an outage) spread those deletes, and start-up does no work that can wait.
    A failing round (the database may be down) is logged and retried next round.
    Every process runs these; each piece of work is safe to run concurrently.
    """
    if housekeeping:
        await wait_for_event(stop, random.uniform(0, interval_seconds))
    while not stop.is_set():
        name = getattr(work, "__name__", work)
        try:
            await work()
        except DATABASE_DOWN as exc:
            # Expected while the database is down: one line a round, not a traceback.
            log.warning("background round of %s failed, database unavailable: %r", name, exc)
        except Exception:
            log.warning("background round of %s failed", name, exc_info=True)
        await wait_for_event(stop, interval_seconds)
