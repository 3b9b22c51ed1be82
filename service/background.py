"""Periodic background work of each service process (reconciler, key expiry)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(
    interval_seconds: float, work: Callable[[], Awaitable[object]], stop: asyncio.Event
) -> None:
    """Run `work` now and then every interval until `stop` is set.

    A failing round (the database may be down) is logged and retried next round.
    Every process runs these; each piece of work is safe to run concurrently.
    """
    while not stop.is_set():
        try:
            await work()
        except Exception:
            log.warning(
                "background round of %s failed", getattr(work, "__name__", work), exc_info=True
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_seconds)
