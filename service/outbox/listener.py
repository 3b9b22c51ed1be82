"""LISTEN on the outbox channel over a dedicated connection that comes back after a drop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from service.backoff import Backoff
from service.db.errors import DATABASE_ERRORS
from service.db.relay_store import RelayStore
from service.db.session import OPERATOR_WAKEUP
from service.outbox.wakeup import PROCESS_SENDER
from service.waiting import wait_for_event

log = logging.getLogger(__name__)
CHANNEL = "outbox"
# Names the connection in pg_stat_activity, so operators (and tests) can find it.
APPLICATION_NAME = "payments-outbox-listener"
# A silently dropped network path never closes the socket; a ping notices it.
PING_INTERVAL_SECONDS = 30.0
PING_TIMEOUT_SECONDS = 5.0
RECONNECT_MIN_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 10.0


class NotifyListener:
    """Calls `on_notify` for every NOTIFY on the channel, and once after each
    (re)connection, since anything committed while it was not listening went
    unannounced. Polling covers the gaps; this only makes delivery prompt.
    `on_operator` hears the wake-ups of operators' retries and replays instead.

    `url` reaches PostgreSQL itself ([database] direct_url): LISTEN belongs to a
    server session, which a transaction pooler hands to other clients as soon as
    a transaction ends, and the notifications would go with it."""

    def __init__(
        self,
        url: str,
        store: RelayStore,
        on_notify: Callable[[], None],
        *,
        on_operator: Callable[[], None] | None = None,
    ) -> None:
        self._url = url
        self._store = store
        self._on_notify = on_notify
        self._on_operator = on_operator or on_notify
        self.connections = 0
        self._reconnects = Backoff(RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with capped exponential backoff.

        Cancellation is the only way out: whatever else goes wrong, the relay
        would otherwise lose its wake-ups for good and silently fall back to polling.
        """
        while True:
            try:
                await self._listen_once()
            except DATABASE_ERRORS as exc:
                delay = self._reconnects.failed()
                log.warning("outbox listener unavailable (%r); reconnecting in %.1fs", exc, delay)
            except Exception:
                delay = self._reconnects.failed()
                log.exception("outbox listener failed; reconnecting in %.1fs", delay)
            await asyncio.sleep(delay)

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(
            self._url,
            timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings={"application_name": APPLICATION_NAME},
        )
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        try:
            await connection.add_listener(CHANNEL, self._notified)
            self.connections += 1
            self._reconnects.succeeded()
            self._on_notify()
            while not connection.is_closed():
                await wait_for_event(lost, PING_INTERVAL_SECONDS)
                if lost.is_set():
                    break
                # asyncio.timeout, not wait_for, for the reason wait_for_event gives.
                async with asyncio.timeout(PING_TIMEOUT_SECONDS):
                    await self._store.ping(connection)
            raise ConnectionError("connection lost")
        finally:
            connection.terminate()

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        if payload == OPERATOR_WAKEUP:
            self._on_operator()
        elif payload != PROCESS_SENDER:  # this process's relay was woken directly
            self._on_notify()
