"""The asyncpg connection pool."""

from __future__ import annotations

import asyncpg

from service.settings import DatabaseSettings


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset hook that skips asyncpg's default reset query.

    The service never changes session state on pooled connections (no SET, no
    LISTEN, no advisory session locks; LISTEN has its own connection), so the
    default `RESET ALL; UNLISTEN *; ...` would be a wasted round trip on every
    release. asyncpg still rolls back a transaction left open.

    Skipping it does not keep broken connections: asyncpg drops a connection
    that is closed when released, and one the server cut off (restart) is closed
    as soon as its end of the socket is read. In between, a query on it raises
    InternalClientError, which service.db.errors counts as "database down" (503).
    """


async def create_pool(
    url: str, settings: DatabaseSettings, *, durable_commits: bool = True
) -> asyncpg.Pool:
    """`durable_commits=False` for bookkeeping a crash may lose (see the outbox relay)."""
    session = {"timezone": "UTC", "application_name": "payments"}
    if not durable_commits:
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
        # json_agg renders timestamps in the session time zone; keep it UTC.
        server_settings=session,
    )
    assert pool is not None
    return pool
