"""The relay loop: claim due events, hand them to the dispatcher, sleep until nudged."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg

from service.db.errors import DATABASE_ERRORS
from service.db.periodic import every
from service.db.queries import Queries
from service.outbox.delivery import WebhookSender, create_transport
from service.outbox.dispatch import Dispatcher
from service.outbox.listener import NotifyListener
from service.outbox.maintenance import RETENTION_INTERVAL_SECONDS, purge_delivered_now
from service.outbox.recorder import AttemptRecorder
from service.settings import Settings
from service.waiting import wait_for_event

log = logging.getLogger(__name__)
# In-flight sends get this long to finish on stop (never more than a request's timeout).
STOP_GRACE_SECONDS = 5.0
# First retry of a failed claim: a single dropped connection costs next to nothing;
# the wait then doubles up to the poll interval while the database stays down.
CLAIM_RETRY_SECONDS = 0.1
# While claims find more than one event (commits outpace the claims), at most one
# claim per this many seconds, so the events of those milliseconds share one round
# trip. A claim that found one event or none paces nothing: at a calm rate every
# event is claimed the moment its commit wakes the relay.
MIN_CLAIM_INTERVAL_SECONDS = 0.005


def default_relay_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class OutboxRelay:
    """One relay; any number may run against one database.

    `listen_url` None turns LISTEN off (the relay then only polls);
    `retention_interval` None leaves retention to other relays or to operators.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        queries: Queries,
        settings: Settings,
        *,
        listen_url: str | None,
        relay_id: str | None = None,
        retention_interval: float | None = RETENTION_INTERVAL_SECONDS,
    ) -> None:
        self._outbox = outbox = settings.outbox
        if outbox.lease_seconds <= outbox.request_timeout_seconds:
            raise ValueError("outbox.lease_seconds must exceed outbox.request_timeout_seconds")
        self.relay_id = relay_id or default_relay_id()
        self._pool = pool
        self._settings = settings
        self._listen_url = listen_url
        self._retention_interval = retention_interval
        self._sql = queries
        # A second batch waits locally while the first is sent, so the sends never
        # stall on a claim round trip.
        self._max_held = max(2 * outbox.batch_size, outbox.batch_size + outbox.concurrency)
        # Set by NOTIFY, by recorded outcomes (room to claim, retries due) and by stop.
        self._nudge = asyncio.Event()
        self._retry_due: float | None = None
        self._waiting_for_room = False
        self.dispatcher: Dispatcher | None = None

    @property
    def delivered(self) -> int:
        return self.dispatcher.delivered if self.dispatcher else 0

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then finish or hand back what is held."""
        async with create_transport(self._settings) as transport:
            recorder = AttemptRecorder(self._pool, self._sql, self.relay_id, self._recorded)
            dispatcher = self.dispatcher = Dispatcher(
                WebhookSender(transport, self._settings),
                recorder,
                concurrency=self._outbox.concurrency,
                timeout=self._outbox.request_timeout_seconds,
            )
            recording = asyncio.create_task(recorder.run())
            background = [asyncio.create_task(self._nudge_on(stop))]
            if self._listen_url:
                listener = NotifyListener(self._listen_url, self._sql, self._nudge.set)
                background.append(asyncio.create_task(listener.run()))
            if self._retention_interval is not None:
                background.append(asyncio.create_task(self._retention(stop)))
            log.info("outbox relay %s started", self.relay_id)
            try:
                await self._claim_loop(stop, dispatcher)
            finally:
                await dispatcher.drain(
                    min(STOP_GRACE_SECONDS, self._outbox.request_timeout_seconds)
                )
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                recorder.close()
                await recording
                await self._release_claims(dispatcher)

    async def _retention(self, stop: asyncio.Event) -> None:
        async def purge_delivered_events() -> None:
            await purge_delivered_now(self._sql, self._pool, self._outbox.retention_days)

        assert self._retention_interval is not None
        await every(self._retention_interval, purge_delivered_events, stop)

    def wake(self) -> None:
        """Look for due events now: an outbox row of this process has committed."""
        self._nudge.set()

    async def _nudge_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._nudge.set()

    async def _claim_loop(self, stop: asyncio.Event, dispatcher: Dispatcher) -> None:
        """Claim and dispatch until `stop`; a database error never ends it, only delays it."""
        batch = self._outbox.batch_size
        retry_in = CLAIM_RETRY_SECONDS
        busy_since = 0.0  # when the last claim that found several events started
        while not stop.is_set():
            if (pause := busy_since + MIN_CLAIM_INTERVAL_SECONDS - time.monotonic()) > 0:
                await wait_for_event(stop, pause)
            # Cleared before looking, so a NOTIFY during the claim is not lost.
            self._nudge.clear()
            if len(dispatcher.held) > self._max_held - batch:
                self._waiting_for_room = True
                await self._nudge.wait()
                continue
            self._waiting_for_room = False
            started = time.monotonic()
            try:
                rows = [row async for row in self._claim(batch)]
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
            if len(rows) < batch:
                await self._sleep()

    def _claim(self, batch: int) -> AsyncIterator[asyncpg.Record]:
        return self._sql.claim_due_events(
            self._pool,
            relay_id=self.relay_id,
            lease_seconds=self._outbox.lease_seconds,
            max_events=batch,
        )

    async def _sleep(self) -> None:
        """Until nudged, the poll interval, or this relay's own earliest retry."""
        timeout = self._outbox.poll_interval_seconds
        if self._retry_due is not None:
            timeout = min(timeout, max(0.0, self._retry_due - time.monotonic()))
        await wait_for_event(self._nudge, timeout)

    def _recorded(self, ids: list[uuid.UUID], retry_due: float | None) -> None:
        if self.dispatcher is not None:
            self.dispatcher.settled(ids)
        if retry_due is not None:
            self._retry_due = min(retry_due, self._retry_due or retry_due)
        # Recorded outcomes only matter to a relay that waits for room to claim or
        # has a new earliest retry; waking it for every batch would double the claims.
        if self._waiting_for_room or retry_due is not None:
            self._nudge.set()

    async def _release_claims(self, dispatcher: Dispatcher) -> None:
        try:
            # Claimed but never attempted, or cut off: back now, not when the lease expires.
            released = await self._sql.release_claims_of_relay(self._pool, relay_id=self.relay_id)
        except DATABASE_ERRORS as exc:
            log.warning("could not release claims, they expire with their lease: %s", exc)
            released = 0
        log.info(
            "outbox relay %s stopped: %d delivered, %d failed attempts, %d claims released",
            self.relay_id,
            dispatcher.delivered,
            dispatcher.failed,
            released,
        )
