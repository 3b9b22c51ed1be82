"""The outbox's backlog (view `outbox_backlog`), for readiness, the metrics gauges, the
console and the operators' `payments outbox status`."""

from __future__ import annotations

import asyncio
import time

import msgspec

from service.db.reader import Reader, ReadSession
from service.db.rows import row_as
from service.metrics import OUTBOX_BLOCKED, OUTBOX_DEAD, OUTBOX_OLDEST_AGE, OUTBOX_PENDING

# How old a figure readiness and a scrape may be answered with.
MAX_AGE_SECONDS = 1.0


class OutboxBacklog(msgspec.Struct, frozen=True):
    pending: int
    oldest_age_seconds: float
    dead: int
    # Waiting behind an earlier undelivered event of their order: a part of pending.
    blocked: int
    # Being sent now (claimed by a relay): a part of pending.
    in_flight: int

    @property
    def oldest_pending_seconds(self) -> float | None:
        """How long the oldest waiting event has waited; None when none waits."""
        return self.oldest_age_seconds if self.pending else None


class OutboxStatus(msgspec.Struct, frozen=True):
    """The operators' summary (`payments outbox status`)."""

    pending: int
    in_flight: int
    # Waiting behind an earlier undelivered (dead, failing, or not yet sent) event
    # of their order: a part of pending.
    blocked: int
    dead: int
    delivered: int
    oldest_pending_seconds: float | None


async def outbox_status(session: ReadSession) -> OutboxStatus:
    return row_as(await session.outbox_status(), OutboxStatus)


async def outbox_backlog(reader: Reader) -> OutboxBacklog:
    """Read the backlog on the primary and publish it as gauges."""
    async with reader.primary_session() as session:
        backlog = row_as(await session.outbox_backlog(), OutboxBacklog)
    OUTBOX_PENDING.set(backlog.pending)
    OUTBOX_OLDEST_AGE.set(backlog.oldest_age_seconds)
    OUTBOX_DEAD.set(backlog.dead)
    OUTBOX_BLOCKED.set(backlog.blocked)
    return backlog


class SharedBacklog:
    """The backlog as readiness, each metrics scrape and the console's pages see it: read
    at most once per MAX_AGE_SECONDS, one read at a time.

    Both endpoints are open to anyone, and the view's cost grows with the backlog (an
    Order Service outage): each request reading it on the pool the payments use would
    let a flood of scrapes hold the connections creates need. So a figure younger than
    MAX_AGE_SECONDS is answered as is, and callers that come while a read is in flight
    share that read (single flight). A failed read is not kept: the next caller reads
    again, so readiness sees the database go away within MAX_AGE_SECONDS.
    """

    def __init__(self, reader: Reader, max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        self._reader = reader
        self._max_age_seconds = max_age_seconds
        self._latest: OutboxBacklog | None = None
        self._latest_at = 0.0  # when the read that found it started (monotonic)
        self._reading: asyncio.Task[OutboxBacklog] | None = None

    async def read(self) -> OutboxBacklog:
        if self._latest is not None and time.monotonic() - self._latest_at < self._max_age_seconds:
            return self._latest
        if self._reading is None:
            self._reading = asyncio.create_task(self._read())
            # Retrieved here, for when every caller gave up waiting on it.
            self._reading.add_done_callback(lambda read: read.cancelled() or read.exception())
        # Shielded: a caller that stops waiting (its own timeout) leaves the read to others.
        return await asyncio.shield(self._reading)

    async def _read(self) -> OutboxBacklog:
        started = time.monotonic()
        try:
            backlog = await outbox_backlog(self._reader)
        finally:
            self._reading = None
        self._latest, self._latest_at = backlog, started
        return backlog
