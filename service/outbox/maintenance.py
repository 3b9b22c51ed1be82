"""Retention of the outbox: delivered events deleted after [outbox] retention_days, by
one relay at a time (the operators' commands are the write side's,
service/commands/outbox_operations.py)."""

from __future__ import annotations

import logging

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from service.db.housekeeping import purge_in_batches
from service.db.pool import BoundedPool
from service.db.queries import Queries

log = logging.getLogger(__name__)
PURGE_CHUNK = 5000
# How often a relay runs retention; one relay at a time does the work.
RETENTION_INTERVAL_SECONDS = 300.0
# A plain connection (the CLI) or a pooled one (the relay).
Connection = asyncpg.Connection | PoolConnectionProxy


async def purge_delivered(
    queries: Queries, connection: Connection, retention_days: float, *, chunk: int = PURGE_CHUNK
) -> int | None:
    """Delete events delivered more than `retention_days` ago, a chunk per transaction.

    Returns how many, or None when another relay holds the retention lock.
    Undelivered events, pending or dead, are never touched.
    """
    return await purge_in_batches(
        connection,
        lambda: queries.try_lock_outbox_retention(connection),
        lambda limit: queries.purge_delivered_events(
            connection, retention_days=retention_days, max_events=limit
        ),
        chunk,
    )


async def purge_delivered_now(queries: Queries, pool: BoundedPool, retention_days: float) -> None:
    """One round of retention, for the relay's periodic loop."""
    async with pool.connection() as connection:
        purged = await purge_delivered(queries, connection, retention_days)
    if purged:
        log.info("outbox retention deleted %d delivered events", purged)
