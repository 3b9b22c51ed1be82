"""The relay loop: claim due events, send them with bounded concurrency, record outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import Any

import asyncpg
import msgspec

from service.db.sql import load_queries
from service.outbox.delivery import WebhookSender, create_client
from service.outbox.events import ClaimedEvent, Outcome, Result
from service.outbox.listener import NotifyListener
from service.outbox.maintenance import RETENTION_INTERVAL_SECONDS, retention_loop
from service.outbox.recorder import AttemptRecorder
from service.settings import Settings

log = logging.getLogger(__name__)
# In-flight sends get this long to finish on stop (never more than a request's timeout).
STOP_GRACE_SECONDS = 5.0
_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


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
        settings: Settings,
        *,
        listen_url: str | None,
        relay_id: str | None = None,
        retention_interval: float | None = RETENTION_INTERVAL_SECONDS,
    ) -> None:
        outbox = settings.outbox
        if outbox.lease_seconds <= outbox.request_timeout_seconds:
            raise ValueError("outbox.lease_seconds must exceed outbox.request_timeout_seconds")
        self.relay_id = relay_id or default_relay_id()
        self._pool = pool
        self._settings = settings
        self._listen_url = listen_url
        self._retention_interval = retention_interval
        self._sql: Any = load_queries()
        self._batch = outbox.batch_size
        # A second batch waits locally while the first is sent, so the sends never
        # stall on a claim round trip.
        self._max_held = max(2 * outbox.batch_size, outbox.batch_size + outbox.concurrency)
        self._slots = asyncio.Semaphore(outbox.concurrency)
        self._held: set[uuid.UUID] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Set by NOTIFY, by recorded outcomes (room to claim, retries due) and by stop.
        self._nudge = asyncio.Event()
        self._retry_due: float | None = None
        self._stopping = False
        # Attempts made by this relay, for its stop log line (and tests).
        self.delivered = 0
        self.failed = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then finish or hand back what is held."""
        async with create_client(self._settings) as client:
            sender = WebhookSender(client, self._settings)
            recorder = AttemptRecorder(self._pool, self.relay_id, self._recorded)
            recording = asyncio.create_task(recorder.run())
            background = [asyncio.create_task(self._watch(stop))]
            if self._listen_url:
                listener = NotifyListener(self._listen_url, self._nudge.set)
                background.append(asyncio.create_task(listener.run()))
            if self._retention_interval is not None:
                days = self._settings.outbox.retention_days
                loop = retention_loop(self._pool, days, self._retention_interval)
                background.append(asyncio.create_task(loop))
            log.info("outbox relay %s started", self.relay_id)
            try:
                await self._claim_loop(stop, sender, recorder)
            finally:
                await self._shutdown(recorder, recording, background)

    async def _watch(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._nudge.set()

    async def _claim_loop(
        self, stop: asyncio.Event, sender: WebhookSender, recorder: AttemptRecorder
    ) -> None:
        poll = self._settings.outbox.poll_interval_seconds
        while not stop.is_set():
            # Cleared before looking, so a NOTIFY during the claim is not lost.
            self._nudge.clear()
            if len(self._held) > self._max_held - self._batch:
                await self._nudge.wait()
                continue
            started = time.monotonic()
            try:
                rows = [row async for row in self._claim()]
            except _DB_ERRORS as exc:
                log.warning("claiming outbox events failed: %s", exc)
                await self._wait(poll)
                continue
            if self._retry_due is not None and self._retry_due <= started:
                self._retry_due = None
            lease_deadline = started + self._settings.outbox.lease_seconds
            for row in rows:
                self._dispatch(row, lease_deadline, sender, recorder)
            if len(rows) < self._batch:
                await self._wait(poll)

    def _claim(self) -> Any:
        return self._sql.claim_due_events(
            self._pool,
            relay_id=self.relay_id,
            lease_seconds=self._settings.outbox.lease_seconds,
            max_events=self._batch,
        )

    async def _wait(self, poll: float) -> None:
        timeout = poll
        if self._retry_due is not None:
            timeout = min(timeout, max(0.0, self._retry_due - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._nudge.wait(), timeout)

    def _dispatch(
        self, row: Any, lease_deadline: float, sender: WebhookSender, recorder: AttemptRecorder
    ) -> None:
        self._held.add(row["id"])
        try:
            event = ClaimedEvent.from_row(row, lease_deadline)
        except msgspec.ValidationError as exc:
            # No retry can fix a body outside the contract: dead at once, for a human.
            log.error("outbox event %s has a malformed body: %s", row["id"], exc)
            recorder.add(Outcome(row["id"], Result.FAILED, error=f"bad body: {exc}", dead=True))
            return
        task = asyncio.create_task(self._deliver(event, sender, recorder))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, event: ClaimedEvent, sender: WebhookSender, recorder: AttemptRecorder
    ) -> None:
        timeout = self._settings.outbox.request_timeout_seconds
        async with self._slots:
            # A send that could outlive the lease might overlap another relay's.
            if self._stopping or time.monotonic() + timeout >= event.lease_deadline:
                outcome = Outcome(event.id, Result.RELEASED)
            else:
                outcome = await sender.send(event)
                if outcome.result is Result.DELIVERED:
                    self.delivered += 1
                else:
                    self.failed += 1
        recorder.add(outcome)

    def _recorded(self, ids: list[uuid.UUID], retry_due: float | None) -> None:
        self._held.difference_update(ids)
        if retry_due is not None:
            self._retry_due = min(retry_due, self._retry_due or retry_due)
        self._nudge.set()

    async def _shutdown(
        self,
        recorder: AttemptRecorder,
        recording: asyncio.Task[None],
        background: list[asyncio.Task[None]],
    ) -> None:
        self._stopping = True
        grace = min(STOP_GRACE_SECONDS, self._settings.outbox.request_timeout_seconds)
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        recorder.close()
        await asyncio.gather(recording, return_exceptions=True)
        try:
            # Whatever was claimed but never attempted (or cut off) goes back now
            # rather than when its lease expires.
            released = await self._sql.release_claims_of_relay(self._pool, relay_id=self.relay_id)
        except _DB_ERRORS as exc:
            log.warning("could not release claims, they expire with their lease: %s", exc)
            released = 0
        log.info(
            "outbox relay %s stopped: %d delivered, %d failed attempts, %d claims released",
            self.relay_id,
            self.delivered,
            self.failed,
            released,
        )
