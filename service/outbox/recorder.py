"""Writes attempt outcomes back to the outbox, a batch of them per statement."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from uuid import UUID

from service.db.errors import DATABASE_ERRORS
from service.db.pool import BoundedPool
from service.db.queries import Queries
from service.metrics import WEBHOOK_ATTEMPTS
from service.outbox.events import Outcome, Result

log = logging.getLogger(__name__)
RETRY_WRITE_SECONDS = 1.0

# Told which events are settled (no longer held) and, when a failure was
# recorded, the earliest monotonic time one of them is due again.
OnRecorded = Callable[[list[UUID], float | None], None]


class AttemptRecorder:
    """Outcomes accumulate while a write is in flight and go out together.

    Per-outcome UPDATEs would cost one round trip per webhook; batching keeps the
    database off the critical path at thousands of webhooks a second.
    """

    def __init__(
        self, pool: BoundedPool, queries: Queries, relay_id: str, on_recorded: OnRecorded
    ) -> None:
        self._pool = pool
        self._sql = queries
        self._relay_id = relay_id
        self._on_recorded = on_recorded
        self._pending: list[Outcome] = []
        self._ready = asyncio.Event()
        self._closing = False

    def add(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        self._ready.set()

    def close(self) -> None:
        """Let `run` return once everything added so far is written."""
        self._closing = True
        self._ready.set()

    async def run(self) -> None:
        while not (self._closing and not self._pending):
            await self._ready.wait()
            self._ready.clear()
            if self._pending and not await self.flush():
                if self._closing:
                    # The database is gone while stopping: the leases will expire.
                    log.error("could not record %d webhook attempts", len(self._pending))
                    return
                await asyncio.sleep(RETRY_WRITE_SECONDS)
                self._ready.set()

    async def flush(self) -> bool:
        """Write what is pending; on failure keep it for the next try."""
        batch, self._pending = self._pending, []
        try:
            await self._write(batch)
        except DATABASE_ERRORS as exc:
            log.warning("recording %d webhook attempts failed, will retry: %s", len(batch), exc)
            # Every statement is idempotent, so the whole batch can go again.
            self._pending[:0] = batch
            return False
        _count_attempts(batch)
        due = [
            time.monotonic() + o.delay_seconds
            for o in batch
            if o.result is Result.FAILED or (o.result is Result.DEFERRED and o.delay_seconds)
        ]
        self._on_recorded([o.event_id for o in batch], min(due, default=None))
        return True

    async def _write(self, batch: list[Outcome]) -> None:
        delivered = [o.event_id for o in batch if o.result is Result.DELIVERED]
        failed = [o for o in batch if o.result is Result.FAILED]
        deferred = [o for o in batch if o.result is Result.DEFERRED]
        released = [o.event_id for o in batch if o.result is Result.RELEASED]
        async with self._pool.connection() as connection:
            if delivered:
                await self._sql.record_deliveries(connection, ids=delivered)
            if failed:
                await self._sql.record_failures(
                    connection,
                    relay_id=self._relay_id,
                    ids=[o.event_id for o in failed],
                    errors=[o.error for o in failed],
                    delays_seconds=[o.delay_seconds for o in failed],
                    dead=[o.dead for o in failed],
                )
            if deferred:
                await self._sql.record_deferrals(
                    connection,
                    relay_id=self._relay_id,
                    ids=[o.event_id for o in deferred],
                    errors=[o.error for o in deferred],
                    delays_seconds=[o.delay_seconds for o in deferred],
                )
            if released:
                await self._sql.release_events(connection, relay_id=self._relay_id, ids=released)


def _count_attempts(batch: list[Outcome]) -> None:
    for outcome in batch:
        if outcome.result is Result.DELIVERED:
            WEBHOOK_ATTEMPTS.labels("delivered").inc()
        elif outcome.result is Result.FAILED:
            WEBHOOK_ATTEMPTS.labels("dead" if outcome.dead else "retry").inc()
        elif outcome.result is Result.DEFERRED:
            WEBHOOK_ATTEMPTS.labels("outage").inc()
