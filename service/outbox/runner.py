"""Starting and stopping a relay with its own pool: from the app's lifespan or `payments relay`."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Literal

import msgspec

from service.db.pool import BoundedPool, create_pool, direct_url
from service.db.queries import Queries
from service.outbox.relay import STOP_GRACE_SECONDS, OutboxRelay
from service.settings import Settings
from service.waiting import jittered, wait_for_event

log = logging.getLogger(__name__)
# Claims, outcome writes and retention each need at most one connection.
RELAY_POOL_SIZE = 3
# Beyond the send grace: writing the last outcomes and releasing the claims.
STOP_BOOKKEEPING_SECONDS = 10.0
# A relay that crashed (a bug, a statement the database refuses) starts again after
# a pause that doubles up to the max; one that had run for a while starts afresh.
RESTART_MIN_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0
STABLE_RUN_SECONDS = 60.0

# running; paused: holding deliveries while the Order Service is down (probing);
# restarting: crashed, starting again after a pause; stopped.
RelayState = Literal["running", "paused", "restarting", "stopped"]


class RelayHandle:
    """A running relay, restarted when it crashes. `await stop()` ends it within a bound."""

    def __init__(self, relay: OutboxRelay, pool: BoundedPool) -> None:
        self.relay = relay
        self._stop = asyncio.Event()
        self._pool = pool
        self._restarting = False
        self.restarts = 0
        self.task = asyncio.create_task(self._supervise(), name=f"outbox relay {relay.relay_id}")
        self.task.add_done_callback(_report_crash)

    @property
    def relay_id(self) -> str:
        return self.relay.relay_id

    @property
    def state(self) -> RelayState:
        if self.task.done():
            return "stopped"
        if self._restarting:
            return "restarting"
        breaker = self.relay.breaker
        return "paused" if breaker is not None and breaker.is_open else "running"

    async def _supervise(self) -> None:
        delay = RESTART_MIN_SECONDS
        while not self._stop.is_set():
            started = time.monotonic()
            self._restarting = False
            try:
                await self.relay.run(self._stop)
                return
            except Exception:
                if time.monotonic() - started > STABLE_RUN_SECONDS:
                    delay = RESTART_MIN_SECONDS
                log.exception("outbox relay %s crashed; restarting in %.1fs", self.relay_id, delay)
            self._restarting = True
            self.restarts += 1
            await wait_for_event(self._stop, jittered(delay, random.Random()))
            delay = min(delay * 2, RESTART_MAX_SECONDS)

    async def stop(self) -> None:
        """Finish in-flight sends (a few seconds at most), hand back the rest, close."""
        self._stop.set()
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
        # cancellation of the caller (the app shutting down) that lands as the task ends.
        try:
            async with asyncio.timeout(STOP_GRACE_SECONDS + STOP_BOOKKEEPING_SECONDS):
                await asyncio.shield(self.task)
        except TimeoutError:
            log.warning("outbox relay %s did not stop in time; cancelled", self.relay_id)
            self.task.cancel()
            # asyncio.wait, not `await self.task` under suppress(CancelledError): that
            # would also swallow a cancellation of the caller.
            await asyncio.wait([self.task])
        except Exception:  # already reported by _report_crash
            pass
        finally:
            try:
                async with asyncio.timeout(STOP_BOOKKEEPING_SECONDS):
                    await self._pool.close()
            except TimeoutError:
                self._pool.terminate()


async def start_relay(
    url: str,
    queries: Queries,
    settings: Settings,
    *,
    listen: bool = True,
    relay_id: str | None = None,
) -> RelayHandle:
    """Start a relay on its own small pool to `url`, and its LISTEN connection (direct,
    bypassing a pooler: see [database] direct_url).

    `listen=False` leaves it polling only (tests of the fallback).
    """
    database = msgspec.structs.replace(
        settings.database, pool_min_size=1, pool_max_size=RELAY_POOL_SIZE
    )
    # The relay's commits (claims, delivery records) need not wait for the disk:
    # after a database crash a lost claim is simply free again and a lost record
    # means one more delivery with the same webhook-id, which at-least-once
    # delivery allows. A flush per small claim cost PostgreSQL more CPU per
    # webhook than the payment itself.
    pool = await create_pool(url, database, durable_commits=False)
    try:
        relay = OutboxRelay(
            pool,
            queries,
            settings,
            listen_url=direct_url(settings.database, url) if listen else None,
            relay_id=relay_id,
        )
    except Exception:
        await pool.close()
        raise
    return RelayHandle(relay, pool)


def _report_crash(task: asyncio.Task[None]) -> None:
    # The supervisor itself failing is a bug: said at once, it would go unnoticed until stop.
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s crashed; webhooks wait for another relay", task.get_name(), exc_info=exc)
