"""The unit of work a command handler writes through."""

from __future__ import annotations

from collections.abc import AsyncIterator
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

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float = 5.0) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        self.sql: Any = load_queries()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        async with self.pool.acquire(timeout=self.acquire_timeout) as connection:
            yield connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with (
            self.pool.acquire(timeout=self.acquire_timeout) as connection,
            connection.transaction(),
        ):
            yield connection
