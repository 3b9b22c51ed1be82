"""LISTEN on the outbox channel over a dedicated connection that comes back after a drop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import asyncpg

from service.db.sql import load_queries

log = logging.getLogger(__name__)
CHANNEL = "outbox"
# Names the connection in pg_stat_activity, so operators (and tests) can find it.
APPLICATION_NAME = "payments-outbox-listener"
# A silently dropped network path never closes the socket; a ping notices it.
PING_INTERVAL_SECONDS = 30.0
PING_TIMEOUT_SECONDS = 5.0
RECONNECT_MIN_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 10.0
_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class NotifyListener:
    """Calls `on_notify` for every NOTIFY on the channel, and once after each
    (re)connection, since anything committed while it was not listening went
    unannounced. Polling covers the gaps; this only makes delivery prompt."""

    def __init__(self, url: str, on_notify: Callable[[], None]) -> None:
        self._url = url
        self._on_notify = on_notify
        self._sql: Any = load_queries()
        self.connections = 0
        self._delay = RECONNECT_MIN_SECONDS

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with capped exponential backoff."""
        while True:
            try:
                await self._listen_once()
            except _DB_ERRORS as exc:
                log.warning(
                    "outbox listener unavailable (%s); reconnecting in %.1fs", exc, self._delay
                )
                await asyncio.sleep(self._delay * random.uniform(0.5, 1.0))
                self._delay = min(self._delay * 2, RECONNECT_MAX_SECONDS)

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(
            self._url, timeout=10, server_settings={"application_name": APPLICATION_NAME}
        )
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        try:
            await connection.add_listener(CHANNEL, self._notified)
            self.connections += 1
            self._delay = RECONNECT_MIN_SECONDS
            self._on_notify()
            while not connection.is_closed():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), PING_INTERVAL_SECONDS)
                    break
                await asyncio.wait_for(
                    self._sql.relay_listener_ping(connection), PING_TIMEOUT_SECONDS
                )
            raise ConnectionError("connection lost")
        finally:
            connection.terminate()

    def _notified(self, *_: object) -> None:
        self._on_notify()
