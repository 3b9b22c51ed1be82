"""The asyncpg connection pool, and connections that fit the pooler in between, if any."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg

from service.db.codecs import prepare_connection
from service.settings import DatabaseSettings

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy


def direct_url(settings: DatabaseSettings, url: str) -> str:
    """Where a session that needs a server connection of its own connects (LISTEN,
    migrations): [database] direct_url, or `url` when nothing pools in between."""
    return settings.direct_url or url


def connect_options(settings: DatabaseSettings) -> dict[str, Any]:
    """asyncpg arguments for connections through [database] url.

    A transaction pooler hands each transaction (each statement outside one) to any
    server connection, so a named prepared statement, which lives in one server
    session, may be missing where it is used. Without a statement cache, asyncpg
    prepares unnamed statements and parses each one again in the same round trip
    as its execution, which PgBouncer 1.18 carries (it has no prepared statement
    support of its own). The price: one more round trip to describe each statement.
    """
    if settings.pooler == "pgbouncer-transaction":
        return {"statement_cache_size": 0}
    return {}


async def connect(url: str, settings: DatabaseSettings, **options: Any) -> asyncpg.Connection:
    """One connection through [database] url (the CLI commands), fit for its pooler."""
    connection: asyncpg.Connection = await asyncpg.connect(
        url, **connect_options(settings), **options
    )
    await prepare_connection(connection)
    return connection


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset hook that skips asyncpg's default reset query.

    The service never changes session state on pooled connections (no SET, no
    LISTEN, no advisory session locks, no temporary tables, no cursors outside a
    transaction; LISTEN has its own connection), so asyncpg's default reset (it
    resets settings, stops listening, closes cursors and releases advisory locks)
    would be a wasted round trip on every release. Through a transaction pooler it would
    also be wrong: it would reach whichever server connection came next, not this
    session's. asyncpg still rolls back a transaction left open, which a
    transaction pooler needs too, to get its server connection back.

    Skipping it does not keep broken connections: asyncpg drops a connection
    that is closed when released, and one the server cut off (restart) is closed
    as soon as its end of the socket is read. In between, a query on it raises
    InternalClientError, which service.db.errors counts as "database down" (503).
    """


class BoundedPool:
    """A connection pool whose every wait for a connection is bounded.

    With every connection held (a lock, a slow disk), asyncpg would queue the next
    acquire without end; here it gives up after `acquire_timeout` seconds ([database]
    command_timeout) with TimeoutError, which the API answers with its quick 503.
    `connection()` is the only way to a connection (the typed queries take no pool,
    service/db/queries.py), so no statement of the service waits unbounded: at most
    the acquire bound, then the statement's own, the same command_timeout.
    """

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float) -> None:
        self._pool = pool
        self.acquire_timeout = acquire_timeout

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        # asyncio.timeout rather than acquire(timeout=...): asyncpg implements the
        # latter with wait_for, a task per acquire on the hot path.
        async with asyncio.timeout(self.acquire_timeout):
            connection: PoolConnectionProxy[asyncpg.Record] = await self._pool.acquire()
        try:
            yield connection
        finally:
            await self._pool.release(connection)

    async def close(self) -> None:
        await self._pool.close()

    def terminate(self) -> None:
        self._pool.terminate()


async def create_pool(
    url: str, settings: DatabaseSettings, *, durable_commits: bool = True
) -> BoundedPool:
    """`durable_commits=False` for bookkeeping a crash may lose (see the outbox relay).

    Through a pooler it has no effect: PgBouncer refuses synchronous_commit as a
    start-up parameter, and a SET would reach other clients' transactions. There,
    give the relays a database role of their own with
    `ALTER ROLE ... SET synchronous_commit = off` (PgBouncer pools per role).
    """
    # json_agg renders timestamps in the session time zone; keep it UTC.
    session = {"timezone": "UTC", "application_name": "payments"}
    if not durable_commits and settings.pooler == "none":
        session["synchronous_commit"] = "off"
    pool = await asyncpg.create_pool(
        url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        command_timeout=settings.command_timeout,
        # The connect timeout (asyncpg's default is 60s): a server that does not
        # answer costs a request this long and a 503, never a hang.
        timeout=settings.command_timeout,
        reset=_keep_session,
        init=prepare_connection,
        server_settings=session,
        **connect_options(settings),
    )
    assert pool is not None
    return BoundedPool(pool, acquire_timeout=settings.command_timeout)
