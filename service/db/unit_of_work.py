"""The unit of work a command handler writes through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from service.db.sql import load_queries

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # What a pooled connection is; it has the whole asyncpg.Connection API.
    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]


class UnitOfWork:
    """A pooled connection plus the loaded SQL, for one command.

    `transaction()` rolls back unless its block completes; `connection()` is for
    commands whose writes are a single statement, which PostgreSQL already makes
    atomic, saving the BEGIN/COMMIT round trips on the hot path.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        acquire_timeout: float = 5.0,
        outbox_committed: Callable[[], None] = lambda: None,
    ) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        self.sql: Any = load_queries()
        # Called by a handler once its outbox row has committed: wakes the relays.
        self.outbox_committed = outbox_committed

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        # asyncio.timeout rather than acquire(timeout=...): asyncpg implements the
        # latter with wait_for, a task per acquire on the hot path.
        async with asyncio.timeout(self.acquire_timeout):
            connection = await self.pool.acquire()
        try:
            yield connection
        finally:
            await self.pool.release(connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.connection() as connection, connection.transaction():
            yield connection
