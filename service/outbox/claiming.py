"""A relay's claim loop: claim due events, hand them to the dispatcher, sleep until nudged.

While the Order Service is down (the breaker is open) it claims one event at a time,
as a probe, when the breaker allows one: the oldest due event, or every other time
the one due the longest, so that probes take the waiting events in turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import asyncpg

from service.db.errors import DATABASE_ERRORS
from service.db.pool import BoundedPool
from service.db.queries import Queries
from service.outbox.breaker import EndpointBreaker
from service.outbox.dispatch import Dispatcher
from service.settings import OutboxSettings
from service.waiting import wait_for_event

log = logging.getLogger(__name__)
# First retry of a failed claim: a single dropped connection costs next to nothing;
# the wait then doubles up to the poll interval while the database stays down.
CLAIM_RETRY_SECONDS = 0.1
# While claims find more than one event (commits outpace the claims), at most one
# claim per this many seconds, so the events of those milliseconds share one round
# trip. A claim that found one event or none paces nothing: at a calm rate every
# event is claimed the moment its commit wakes the relay.
MIN_CLAIM_INTERVAL_SECONDS = 0.005


class ClaimLoop:
    def __init__(
        self,
        pool: BoundedPool,
        queries: Queries,
        outbox: OutboxSettings,
        relay_id: str,
        *,
        nudge: asyncio.Event,
        breaker: EndpointBreaker,
    ) -> None:
        self._pool = pool
        self._sql = queries
        self._outbox = outbox
        self._relay_id = relay_id
        # Set by NOTIFY, by recorded outcomes (room to claim, retries due) and by stop.
        self._nudge = nudge
        self._breaker = breaker
        # A second batch waits locally while the first is sent, so the sends never
        # stall on a claim round trip.
        self._max_held = max(2 * outbox.batch_size, outbox.batch_size + outbox.concurrency)
        self._retry_due: float | None = None
        self._waiting_for_room = False
        self._dispatcher: Dispatcher | None = None

    async def run(self, stop: asyncio.Event, dispatcher: Dispatcher) -> None:
        """Claim and dispatch until `stop`; a database error never ends it, only delays it."""
        self._dispatcher = dispatcher
        batch = self._outbox.batch_size
        retry_in = CLAIM_RETRY_SECONDS
        busy_since = 0.0  # when the last claim that found several events started
        while not stop.is_set():
            if (pause := busy_since + MIN_CLAIM_INTERVAL_SECONDS - time.monotonic()) > 0:
                await wait_for_event(stop, pause)
            # Cleared before looking, so a NOTIFY during the claim is not lost.
            self._nudge.clear()
            self._breaker.changed.clear()
            if len(dispatcher.held) > self._max_held - batch:
                self._waiting_for_room = True
                await self._nudge.wait()
                continue
            self._waiting_for_room = False
            probe_in = self._breaker.seconds_to_probe()
            if probe_in is not None and probe_in > 0:
                # The Order Service is down: new events (nudges) change nothing.
                await wait_for_event(self._breaker.changed, probe_in)
                continue
            started = time.monotonic()
            try:
                rows = await self._claim(probe=probe_in is not None)
            except DATABASE_ERRORS as exc:
                log.warning("claiming outbox events failed, retrying in %.1fs: %r", retry_in, exc)
                # Only stop cuts this short: nudges (NOTIFY, recorded outcomes) say
                # there is work, not that the database is back.
                await wait_for_event(stop, retry_in)
                retry_in = min(retry_in * 2, self._outbox.poll_interval_seconds)
                continue
            retry_in = CLAIM_RETRY_SECONDS
            busy_since = started if len(rows) > 1 else 0.0
            if self._retry_due is not None and self._retry_due <= started:
                self._retry_due = None
            for row in rows:
                dispatcher.dispatch(row, lease_deadline=started + self._outbox.lease_seconds)
            if probe_in is not None:
                # Until the probe's outcome (or, with nothing to probe with, a poll).
                await wait_for_event(self._breaker.changed, self._outbox.poll_interval_seconds)
            elif len(rows) < batch:
                await self._sleep()

    async def _claim(self, *, probe: bool) -> list[asyncpg.Record]:
        """A batch of due events in order, or one to probe a down Order Service with."""
        async with self._pool.connection() as connection:
            if probe and self._breaker.probe_in_turn():
                claimed = self._sql.claim_probe_event(
                    connection, relay_id=self._relay_id, lease_seconds=self._outbox.lease_seconds
                )
            else:
                claimed = self._sql.claim_due_events(
                    connection,
                    relay_id=self._relay_id,
                    lease_seconds=self._outbox.lease_seconds,
                    max_events=1 if probe else self._outbox.batch_size,
                )
            return [row async for row in claimed]

    async def _sleep(self) -> None:
        """Until nudged, the poll interval, or this relay's own earliest retry."""
        timeout = self._outbox.poll_interval_seconds
        if self._retry_due is not None:
            timeout = min(timeout, max(0.0, self._retry_due - time.monotonic()))
        await wait_for_event(self._nudge, timeout)

    def recorded(self, ids: list[uuid.UUID], retry_due: float | None) -> None:
        """The recorder wrote these outcomes (`retry_due`: the earliest failed one's)."""
        if self._dispatcher is not None:
            self._dispatcher.settled(ids)
        if retry_due is not None:
            self._retry_due = min(retry_due, self._retry_due or retry_due)
        # Recorded outcomes only matter to a relay that waits for room to claim or
        # has a new earliest retry; waking it for every batch would double the claims.
        if self._waiting_for_room or retry_due is not None:
            self._nudge.set()
