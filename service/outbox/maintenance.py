"""Operators' side of the outbox: status, replay of dead events, retention."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from service.db.errors import DATABASE_ERRORS
from service.db.sql import load_queries

log = logging.getLogger(__name__)
PURGE_CHUNK = 5000
# How often a relay runs retention; one relay at a time does the work.
RETENTION_INTERVAL_SECONDS = 300.0
# A plain connection (the CLI) or a pooled one (the relay).
Connection = asyncpg.Connection | PoolConnectionProxy


class OutboxStatus(msgspec.Struct, frozen=True):
    pending: int
    in_flight: int
    dead: int
    delivered: int
    oldest_pending_seconds: float | None


class ReplayedEvent(msgspec.Struct, frozen=True):
    id: UUID
    order_id: int
    seq: int


async def outbox_status(connection: Connection) -> OutboxStatus:
    row = await load_queries().outbox_status(connection)
    return OutboxStatus(**dict(row))


async def replay_dead(
    connection: Connection,
    *,
    event_id: UUID | None = None,
    order_id: int | None = None,
    dead_since: datetime | None = None,
    all_dead: bool = False,
) -> list[ReplayedEvent]:
    """Make dead events due now with a fresh set of attempts, and wake the relays.

    Filters combine; with none, `all_dead` must be set, so a bare call replays nothing.
    """
    sql: Any = load_queries()
    async with connection.transaction():
        rows = [
            row
            async for row in sql.replay_dead_events(
                connection,
                event_id=event_id,
                order_id=order_id,
                dead_since=dead_since,
                all_dead=all_dead,
            )
        ]
        if rows:
            # Sent on commit, so relays never wake before the rows are visible.
            await sql.wake_relays(connection, sender="replay")
    return [ReplayedEvent(id=r["id"], order_id=r["order_id"], seq=r["seq"]) for r in rows]


async def purge_delivered(
    connection: Connection, retention_days: float, *, chunk: int = PURGE_CHUNK
) -> int | None:
    """Delete events delivered more than `retention_days` ago, a chunk per transaction.

    Returns how many, or None when another relay holds the retention lock.
    Undelivered events, pending or dead, are never touched.
    """
    sql: Any = load_queries()
    total = 0
    while True:
        async with connection.transaction():
            if not await sql.try_lock_outbox_retention(connection):
                return total or None
            purged: int = await sql.purge_delivered_events(
                connection, retention_days=retention_days, max_events=chunk
            )
        total += purged
        if purged < chunk:
            return total


async def retention_loop(
    pool: asyncpg.Pool, retention_days: float, interval: float = RETENTION_INTERVAL_SECONDS
) -> None:
    """Run retention every `interval` seconds until cancelled."""
    while True:
        try:
            async with pool.acquire() as connection:
                purged = await purge_delivered(connection, retention_days)
            if purged:
                log.info("outbox retention deleted %d delivered events", purged)
        except DATABASE_ERRORS as exc:
            log.warning("outbox retention failed, will try again: %s", exc)
        await asyncio.sleep(interval)
