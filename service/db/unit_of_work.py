"""The unit of work a command handler writes through.

A handler asks for a `Session` (a pooled connection with the write side's statements,
typed) and the unit of work does the bookkeeping of the commit: when a statement of
the session queued an order webhook, the relays are woken once the block ends, so no
handler has to remember to (a forgotten wake-up would leave a webhook waiting for the
next poll).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import asyncpg

from service.db.queries import Queries
from service.db.session import Session

if TYPE_CHECKING:
    from service.db.session import Connection


class UnitOfWork:
    """`transaction()` rolls back unless its block completes; `connection()` is for
    commands whose writes are single statements, which PostgreSQL already makes
    atomic, saving the BEGIN/COMMIT round trips on the hot path."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        queries: Queries,
        *,
        acquire_timeout: float = 5.0,
        on_webhooks_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.pool = pool
        self.queries = queries
        self.acquire_timeout = acquire_timeout
        self._on_webhooks_queued = on_webhooks_queued

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Session]:
        # asyncio.timeout rather than acquire(timeout=...): asyncpg implements the
        # latter with wait_for, a task per acquire on the hot path.
        async with asyncio.timeout(self.acquire_timeout):
            connection: Connection = await self.pool.acquire()
        session = Session(connection, self.queries)
        try:
            yield session
        finally:
            await self.pool.release(connection)
            # Also after a rollback: a wake-up that finds nothing costs one claim.
            if session.queued_webhooks:
                self._on_webhooks_queued()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        async with self.connection() as session, session.connection.transaction():
            yield session
