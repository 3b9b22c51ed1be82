"""A relay: the outbox's order webhooks sent to the Order Service, in one loop.

    wait    until notified (a commit of this process, a NOTIFY, an operator), a send
            or a write ends, this relay's earliest retry or probe falls due, the poll
            interval passes, or stop;
    claim   a batch of due events (FOR UPDATE SKIP LOCKED, each order's events in
            their order) while at most one batch is held, or, while the Order Service
            is down, one event to probe it with;
    send    each in a task of its own, `concurrency` at most at once;
    record  what the sends that ended came to, in one statement (one write at a time,
            beside the loop);
    repeat.

It calls small helpers: the circuit breaker (breaker.py), the retry schedule
(schedule.py), the HTTP call and its signature (delivery.py), the database (RelayStore,
service/db/relay_store.py). Beside the loop run its LISTEN connection (listener.py) and
retention. Any number of relays may run against one database. A relay that crashes is
started again by its handle (RelayHandle, below), with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from typing import Literal

import msgspec

from service.backoff import Backoff
from service.db.errors import DATABASE_ERRORS
from service.db.periodic import every
from service.db.pool import BoundedPool, create_pool, direct_url
from service.db.queries import Queries
from service.db.relay_store import ClaimedEvent, Outcome, RelayStore, Result
from service.metrics import WEBHOOK_ATTEMPTS
from service.outbox.breaker import EndpointBreaker
from service.outbox.delivery import WebhookSender
from service.outbox.listener import NotifyListener
from service.request_context import batches_in_flight, request_id_var
from service.settings import Settings
from service.waiting import wait_for_event

log = logging.getLogger(__name__)
# In-flight sends get this long to finish on stop (never more than a request's timeout).
STOP_GRACE_SECONDS = 5.0
# The first wait after a failed claim or record: a single dropped connection costs next
# to nothing; the wait then doubles up to the poll interval while the database stays down.
DATABASE_RETRY_SECONDS = 0.1
# How often a relay runs retention; one relay at a time does the work.
RETENTION_INTERVAL_SECONDS = 300.0

# Claims, outcome records and retention each need at most one connection.
RELAY_POOL_SIZE = 3
# Sends at once while the process answers a batch call (measured on 2 cores: 10,000
# orders in batches of 500 answered in 0.84-0.89 s instead of 0.99-1.07 s with every
# `concurrency` send going; the last webhook as soon: 2.1 s).
SENDS_WHILE_BATCHING = 4
# How often a send held back looks whether the batch has been answered.
BATCH_CHECK_SECONDS = 0.05
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


def default_relay_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class OutboxRelay:
    """One relay. `listen_url` None turns LISTEN off (the relay then only polls);
    `retention_interval` None leaves retention to other relays or to operators."""

    def __init__(
        self,
        pool: BoundedPool,
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
        self._store = RelayStore(pool, queries)
        self._settings = settings
        self._listen_url = listen_url
        self._retention_interval = retention_interval
        # A relay holds two batches at most: one being sent, the next one waiting for
        # send slots, so that the sends never stall on a claim's round trip. It claims
        # again once no more than this many are held (that wakes it), so under load one
        # claim and one record serve a batch of sends.
        self._claim_when_held = max(outbox.batch_size, outbox.concurrency)
        self._while_batching = asyncio.Semaphore(SENDS_WHILE_BATCHING)
        # Set by notifications, by a send ending (when that leaves room for a claim, or
        # while few are held: its outcome is recorded at once), and by stop.
        self._wake = asyncio.Event()
        # Whether a claim may find due events: after a notification, or a claim that
        # came back full. Cleared before a claim, so a notification during it counts.
        self._more_due = True
        # When to look for due events without a notification (_look_at): the next poll
        # (or probe of a down Order Service), and the earliest retry of this relay's.
        self._poll_at = 0.0
        self._retry_at = float("inf")
        # Claimed and not yet ended: one task each, sending or waiting for a slot.
        self._held: set[asyncio.Task[None]] = set()
        self._ended: list[Outcome] = []
        self._stopping = False
        # A fresh one each run: a restarted relay starts from what the database says.
        self.breaker: EndpointBreaker | None = None
        # Sends made, for the relay's stop log line (and tests).
        self.delivered = 0
        self.failed = 0

    def wake(self) -> None:
        """Look for due events now: an outbox row has committed."""
        self._more_due = True
        self._wake.set()

    def operator_asked(self) -> None:
        """An operator retried or replayed events: deliver now, probing a down Order Service."""
        if self.breaker is not None:
            self.breaker.probe_now()
        self.wake()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then finish the sends in flight and hand back the rest."""
        breaker = self.breaker = EndpointBreaker(self._outbox)
        self._stopping, self._ended, self._more_due = False, [], True
        background = [asyncio.create_task(self._wake_on(stop))]
        if self._listen_url:
            listener = NotifyListener(
                self._listen_url, self._store, self.wake, on_operator=self.operator_asked
            )
            background.append(asyncio.create_task(listener.run()))
        if self._retention_interval is not None:
            background.append(
                asyncio.create_task(
                    every(self._retention_interval, self._purge_delivered, stop, housekeeping=True)
                )
            )
        log.info("outbox relay %s started", self.relay_id)
        try:
            async with WebhookSender(self._settings, breaker) as sender:
                try:
                    await self._deliver(stop, sender, breaker)
                finally:
                    await self._finish_sends()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._release_claims()

    async def _deliver(
        self, stop: asyncio.Event, sender: WebhookSender, breaker: EndpointBreaker
    ) -> None:
        outbox = self._outbox
        slots = asyncio.Semaphore(max(1, outbox.concurrency))
        claims = Backoff(DATABASE_RETRY_SECONDS, outbox.poll_interval_seconds)
        records = Backoff(DATABASE_RETRY_SECONDS, outbox.poll_interval_seconds)
        recording: asyncio.Task[None] | None = None
        while not stop.is_set():
            # Wait, unless a claim may find due events and there is room to hold them.
            if len(self._held) > self._claim_when_held:
                await wait_for_event(self._wake, outbox.poll_interval_seconds)
            elif not self._more_due:
                now = time.monotonic()
                await wait_for_event(self._wake, max(0.0, self._look_at() - now))
            self._wake.clear()
            if stop.is_set():
                break

            # Claim a batch of due events in order, or one to probe a down Order Service.
            now = time.monotonic()
            if len(self._held) <= self._claim_when_held and (
                self._more_due or now >= self._look_at()
            ):
                probe_in = breaker.seconds_to_probe()
                self._more_due = False
                if self._retry_at <= now:  # this look covers it
                    self._retry_at = float("inf")
                if probe_in is not None and probe_in > 0:
                    # The Order Service is down: new events change nothing until the probe.
                    self._poll_at = now + probe_in
                    events = []
                else:
                    self._poll_at = now + outbox.poll_interval_seconds
                    wanted = 1 if probe_in is not None else outbox.batch_size
                    try:
                        events = await self._claim(breaker, wanted, probe=probe_in is not None)
                    except DATABASE_ERRORS as exc:
                        delay = claims.failed()
                        log.warning(
                            "claiming outbox events failed, retrying in %.1fs: %r", delay, exc
                        )
                        self._more_due = True
                        # Only stop cuts this short: a notification says there is work,
                        # not that the database is back.
                        await wait_for_event(stop, delay)
                        continue
                    claims.succeeded()
                    if len(events) == wanted and probe_in is None:
                        self._more_due = True

                # Send them, `concurrency` at most at once, each in a task of its own.
                lease_deadline = now + outbox.lease_seconds
                for event in events:
                    task = asyncio.create_task(
                        self._send(sender, breaker, slots, event, lease_deadline)
                    )
                    self._held.add(task)
                    task.add_done_callback(self._held.discard)

            # Record what the sends that ended came to, in one statement. One write at a
            # time, while the loop goes on: a claim never waits for it (on a large outbox
            # an UPDATE that moves delivered_at costs milliseconds of index upkeep).
            if self._ended and (recording is None or recording.done()):
                recording = asyncio.create_task(self._record(stop, records))

        if recording is not None:
            await recording

    def _look_at(self) -> float:
        """When to look for due events without a notification: the next poll (or probe),
        or this relay's earliest retry if sooner."""
        return min(self._poll_at, self._retry_at)

    async def _claim(
        self, breaker: EndpointBreaker, wanted: int, *, probe: bool
    ) -> list[ClaimedEvent]:
        lease = self._outbox.lease_seconds
        if not probe:
            return await self._store.claim(self.relay_id, lease_seconds=lease, max_events=wanted)
        # Probes alternate between the oldest due event and the one due the longest.
        if breaker.probe_in_turn():
            events = await self._store.claim_probe(self.relay_id, lease_seconds=lease)
        else:
            events = await self._store.claim(self.relay_id, lease_seconds=lease, max_events=1)
        for event in events:
            breaker.probing(event.id)
        return events

    async def _send(
        self,
        sender: WebhookSender,
        breaker: EndpointBreaker,
        slots: asyncio.Semaphore,
        event: ClaimedEvent,
        lease_deadline: float,
    ) -> None:
        # Each task runs in a context of its own: the webhook's log lines carry the id
        # of the API call that caused it.
        request_id_var.set(event.request_id)
        try:
            async with slots:
                if (
                    self._stopping
                    # A send that could outlive the lease might overlap another relay's.
                    or time.monotonic() + self._outbox.request_timeout_seconds >= lease_deadline
                    # The Order Service is down and another event probes it.
                    or not breaker.admits(event.id)
                ):
                    # Handed back untouched, due as before.
                    outcome = Outcome(event.id, Result.RELEASED)
                else:
                    held_back = await self._turn_while_batching()
                    try:
                        outcome = await sender.send(event)
                    finally:
                        if held_back:
                            self._while_batching.release()
        except Exception:  # a bug: the event stays claimed until its lease ends
            log.exception("sending webhook %s failed unexpectedly", event.id)
            return
        finally:
            # This task still counts as held: wake the loop when room for a claim opens,
            # and at once while few are held, so that outcomes are recorded promptly.
            if len(self._held) - 1 <= self._claim_when_held:
                self._wake.set()
        self._ended.append(outcome)
        if outcome.result is Result.RELEASED:
            self._more_due = True
        elif outcome.result is Result.DELIVERED:
            self.delivered += 1
        else:
            self.failed += 1

    async def _turn_while_batching(self) -> bool:
        """A batch's answer comes first: while this process answers one, a send waits for
        one of SENDS_WHILE_BATCHING turns (True: taken, to be released), so that the
        batch's work is not queued behind the relay's; once no batch is answered it goes
        at once (False). Bulk bursts only: a steady stream of single creates never slows
        the relay, whatever the Order Service's pace."""
        while batches_in_flight():
            try:
                # No Task per try (as wait_for makes on 3.11), in the very window meant to
                # free the CPU. A permit taken just as the time runs out is kept: the
                # timeout raises only if it cancelled the acquire, which then took none.
                async with asyncio.timeout(BATCH_CHECK_SECONDS):
                    await self._while_batching.acquire()
            except TimeoutError:
                continue
            return True
        return False

    async def _record(self, stop: asyncio.Event | None, retries: Backoff | None) -> None:
        """Write the outcomes of the sends that ended, in one statement. On failure they
        stay for the next write (the statement is idempotent), after a wait that doubles
        while the database stays away (cut short only by `stop`)."""
        outcomes = list(self._ended)
        try:
            await self._store.record(self.relay_id, outcomes)
        except DATABASE_ERRORS as exc:
            if stop is None or retries is None:
                raise
            delay = retries.failed()
            log.warning("recording webhook outcomes failed, retrying in %.1fs: %r", delay, exc)
            await wait_for_event(stop, delay)
            return
        finally:
            # Outcomes that ended meanwhile are written next.
            self._wake.set()
        if retries is not None:
            retries.succeeded()
        del self._ended[: len(outcomes)]
        now = time.monotonic()
        for outcome in outcomes:
            if outcome.result is Result.DELIVERED:
                WEBHOOK_ATTEMPTS.labels("delivered").inc()
            elif outcome.result is Result.FAILED:
                WEBHOOK_ATTEMPTS.labels("dead" if outcome.dead else "retry").inc()
            elif outcome.result is Result.DEFERRED:
                WEBHOOK_ATTEMPTS.labels("outage").inc()
            # A failure is due again after its delay: look then, not a poll later.
            if outcome.delay_seconds and not outcome.dead:
                self._retry_at = min(self._retry_at, now + outcome.delay_seconds)

    async def _finish_sends(self) -> None:
        """Start no send; give those in flight a few seconds (never more than a request's
        timeout), cut off the rest, and record what ended. What is cut off stays claimed,
        and is released with the rest (_release_claims)."""
        self._stopping = True
        grace = min(STOP_GRACE_SECONDS, self._outbox.request_timeout_seconds)
        if self._held:
            _, late = await asyncio.wait(set(self._held), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        try:
            if self._ended:
                await self._record(None, None)
        except DATABASE_ERRORS as exc:
            # The database is gone while stopping: the leases will expire.
            log.error("could not record %d webhook outcomes: %r", len(self._ended), exc)

    async def _release_claims(self) -> None:
        try:
            # Claimed but not sent, or cut off: back now, not when the lease expires.
            released = await self._store.release_claims(self.relay_id)
        except DATABASE_ERRORS as exc:
            log.warning("could not release claims, they expire with their lease: %s", exc)
            released = 0
        log.info(
            "outbox relay %s stopped: %d delivered, %d failed sends, %d claims released",
            self.relay_id,
            self.delivered,
            self.failed,
            released,
        )

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _purge_delivered(self) -> None:
        purged = await self._store.purge_delivered(self._outbox.retention_days)
        if purged:
            log.info("outbox retention deleted %d delivered events", purged)


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
        restarts = Backoff(RESTART_MIN_SECONDS, RESTART_MAX_SECONDS)
        while not self._stop.is_set():
            started = time.monotonic()
            self._restarting = False
            try:
                await self.relay.run(self._stop)
                return
            except Exception:
                if time.monotonic() - started > STABLE_RUN_SECONDS:
                    restarts.succeeded()
                delay = restarts.failed()
                log.exception("outbox relay %s crashed; restarting in %.1fs", self.relay_id, delay)
            self._restarting = True
            self.restarts += 1
            await wait_for_event(self._stop, delay)

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
