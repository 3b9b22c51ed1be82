"""The events one relay holds: sent with bounded concurrency, outcomes to the recorder."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import asyncpg
import msgspec

from service.outbox.breaker import EndpointBreaker
from service.outbox.delivery import WebhookSender
from service.outbox.events import ClaimedEvent, Outcome, Result
from service.outbox.recorder import AttemptRecorder
from service.request_context import request_id_var

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        sender: WebhookSender,
        recorder: AttemptRecorder,
        breaker: EndpointBreaker,
        *,
        concurrency: int,
        timeout: float,
    ) -> None:
        self._sender = sender
        self._breaker = breaker
        self._recorder = recorder
        self._slots = asyncio.Semaphore(concurrency)
        self._timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Claimed and not yet recorded: the relay claims more only when this shrinks.
        self.held: set[uuid.UUID] = set()
        # Attempts made, for the relay's stop log line (and tests).
        self.delivered = 0
        self.failed = 0

    def dispatch(self, row: asyncpg.Record, lease_deadline: float) -> None:
        self.held.add(row["id"])
        try:
            event = ClaimedEvent.from_row(row, lease_deadline)
        except msgspec.DecodeError as exc:
            # No retry can fix a body outside the contract: dead at once, for a human.
            log.error("outbox event %s has a malformed body: %s", row["id"], exc)
            error = f"bad body: {exc}"
            self._recorder.add(Outcome(row["id"], Result.FAILED, error=error, dead=True))
            return
        task = asyncio.create_task(self._deliver(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def settled(self, ids: list[uuid.UUID]) -> None:
        self.held.difference_update(ids)

    async def _deliver(self, event: ClaimedEvent) -> None:
        # Each task runs in its own context: the webhook's log lines carry the id
        # of the API call that caused it.
        request_id_var.set(event.request_id)
        async with self._slots:
            # A send that could outlive the lease might overlap another relay's.
            if self._stopping or time.monotonic() + self._timeout >= event.lease_deadline:
                outcome = Outcome(event.id, Result.RELEASED)
            elif not self._breaker.admit(event.id):
                # The Order Service is down and another event probes it: this one
                # goes back untouched, due as before, for when it answers again.
                outcome = Outcome(event.id, Result.RELEASED)
            else:
                outcome = await self._sender.send(event)
                if outcome.result is Result.DELIVERED:
                    self.delivered += 1
                else:
                    self.failed += 1
        self._recorder.add(outcome)

    async def drain(self, grace: float) -> None:
        """Start nothing new; give sends in flight `grace` seconds, then cut them off.

        What is cut off or never started stays claimed here; the relay releases it.
        """
        self._stopping = True
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
