"""A relay: its claim loop, dispatcher, recorder, listener and retention, wired together."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

from service.db.errors import DATABASE_ERRORS
from service.db.periodic import every
from service.db.pool import BoundedPool
from service.db.queries import Queries
from service.outbox.breaker import EndpointBreaker
from service.outbox.claiming import ClaimLoop
from service.outbox.delivery import WebhookSender, create_transport
from service.outbox.dispatch import Dispatcher
from service.outbox.listener import NotifyListener
from service.outbox.maintenance import RETENTION_INTERVAL_SECONDS, purge_delivered_now
from service.outbox.recorder import AttemptRecorder
from service.settings import Settings

log = logging.getLogger(__name__)
# In-flight sends get this long to finish on stop (never more than a request's timeout).
STOP_GRACE_SECONDS = 5.0


def default_relay_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class OutboxRelay:
    """One relay; any number may run against one database.

    `listen_url` None turns LISTEN off (the relay then only polls);
    `retention_interval` None leaves retention to other relays or to operators.
    """

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
        self._pool = pool
        self._settings = settings
        self._listen_url = listen_url
        self._retention_interval = retention_interval
        self._sql = queries
        # Set by NOTIFY, by recorded outcomes (room to claim, retries due) and by stop.
        self._nudge = asyncio.Event()
        # A fresh one each run: a restarted relay starts from what the database says.
        self.breaker: EndpointBreaker | None = None
        self.dispatcher: Dispatcher | None = None

    @property
    def delivered(self) -> int:
        return self.dispatcher.delivered if self.dispatcher else 0

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then finish or hand back what is held."""
        breaker = self.breaker = EndpointBreaker(self._outbox)
        claims = ClaimLoop(
            self._pool, self._sql, self._outbox, self.relay_id, nudge=self._nudge, breaker=breaker
        )
        async with create_transport(self._settings) as transport:
            recorder = AttemptRecorder(self._pool, self._sql, self.relay_id, claims.recorded)
            dispatcher = self.dispatcher = Dispatcher(
                WebhookSender(transport, self._settings, breaker),
                recorder,
                breaker,
                concurrency=self._outbox.concurrency,
                timeout=self._outbox.request_timeout_seconds,
            )
            recording = asyncio.create_task(recorder.run())
            background = [asyncio.create_task(self._nudge_on(stop, breaker))]
            if self._listen_url:
                listener = NotifyListener(
                    self._listen_url, self._sql, self._nudge.set, on_operator=self.operator_asked
                )
                background.append(asyncio.create_task(listener.run()))
            if self._retention_interval is not None:
                background.append(asyncio.create_task(self._retention(stop)))
            log.info("outbox relay %s started", self.relay_id)
            try:
                await claims.run(stop, dispatcher)
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
        await every(self._retention_interval, purge_delivered_events, stop, housekeeping=True)

    def wake(self) -> None:
        """Look for due events now: an outbox row of this process has committed."""
        self._nudge.set()

    def operator_asked(self) -> None:
        """An operator retried or replayed events: deliver now, probing a down Order Service."""
        if self.breaker is not None:
            self.breaker.probe_now()
        self._nudge.set()

    async def _nudge_on(self, stop: asyncio.Event, breaker: EndpointBreaker) -> None:
        await stop.wait()
        self._nudge.set()
        breaker.changed.set()

    async def _release_claims(self, dispatcher: Dispatcher) -> None:
        try:
            # Claimed but never attempted, or cut off: back now, not when the lease expires.
            async with self._pool.connection() as connection:
                released = await self._sql.release_claims_of_relay(
                    connection, relay_id=self.relay_id
                )
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
