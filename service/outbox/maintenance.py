"""Operators' side of the outbox: status, replay of dead events, retry of waiting ones,
redelivery of one event, retention."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from service.db.housekeeping import purge_in_batches
from service.db.queries import Queries
from service.db.rows import row_as
from service.db.unit_of_work import UnitOfWork
from service.outbox.wakeup import OPERATOR_SENDER

log = logging.getLogger(__name__)
PURGE_CHUNK = 5000
# A plain connection (the CLI) or a pooled one (the relay).
Connection = asyncpg.Connection | PoolConnectionProxy


class OutboxStatus(msgspec.Struct, frozen=True):
    pending: int
    in_flight: int
    # Waiting behind an earlier undelivered (dead, failing, or not yet sent) event
    # of their order: a part of pending.
    blocked: int
    dead: int
    delivered: int
    oldest_pending_seconds: float | None


class ReplayedEvent(msgspec.Struct, frozen=True):
    id: UUID
    order_id: int
    seq: int


class RetriedEvent(msgspec.Struct, frozen=True):
    id: UUID
    order_id: int
    seq: int
    # It was dead, ahead of a blocked event that was retried: a fresh set of attempts.
    was_dead: bool


class Redelivery(msgspec.Struct, frozen=True):
    """What a redelivery set going (the answer of POST /api/v1/events/{id}/redeliver)."""

    id: UUID
    order_id: int
    # The events of the order now due, in the order the relay sends them: the earlier
    # undelivered ones the event waits for, the event, then the later ones of its order
    # (already delivered, or not yet: those not dead).
    sending: list[UUID]


async def outbox_status(queries: Queries, connection: Connection) -> OutboxStatus:
    return row_as(await queries.outbox_status(connection), OutboxStatus)


async def replay_dead(
    queries: Queries,
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
    rows = await _due_now(
        queries,
        connection,
        queries.replay_dead_events(
            connection,
            event_id=event_id,
            order_id=order_id,
            dead_since=dead_since,
            all_dead=all_dead,
        ),
    )
    return [row_as(row, ReplayedEvent) for row in rows]


async def retry_waiting(
    queries: Queries,
    connection: Connection,
    *,
    event_id: UUID | None = None,
    order_id: int | None = None,
    created_since: datetime | None = None,
    all_waiting: bool = False,
) -> list[RetriedEvent]:
    """Make waiting events (a retry later, or blocked) due now, and wake the relays.

    A blocked event comes with the earlier events of its order it waits for, dead ones
    included. Filters combine; with none, `all_waiting` must be set.
    """
    rows = await _due_now(
        queries,
        connection,
        queries.retry_waiting_events(
            connection,
            event_id=event_id,
            order_id=order_id,
            created_since=created_since,
            all_waiting=all_waiting,
        ),
    )
    return [row_as(row, RetriedEvent) for row in sorted(rows, key=lambda row: row["seq"])]


async def redeliver(uow: UnitOfWork, event_id: UUID) -> Redelivery | None:
    """Send one event again now, whatever its state, keeping its order's order, and wake
    the relays; None when no event has that id.

    A dead event gets a fresh set of attempts, as a replay gives; a delivered one is sent
    again, and so is every later event of its order, after it (sql/events.sql
    reopen_event): one a relay is sending at that moment goes again once that send has
    ended. The earlier undelivered events of its order it would wait for are made due
    first, as a retry makes them. An undelivered event a relay is sending at that moment
    is left to that send.
    """
    queries = uow.queries
    async with uow.connection() as session:
        connection = session.connection
        async with connection.transaction():
            # An event of the order queued meanwhile commits after this transaction.
            if await queries.lock_order_of_event(connection, event_id=event_id) is None:
                return None
            rows = await _make_due(
                queries,
                connection,
                queries.replay_dead_events(
                    connection, event_id=event_id, order_id=None, dead_since=None, all_dead=False
                ),
                queries.reopen_event(connection, event_id=event_id),
                queries.retry_waiting_events(
                    connection,
                    event_id=event_id,
                    order_id=None,
                    created_since=None,
                    all_waiting=False,
                ),
            )
    # reopen_event returns the event itself whenever it exists (retention may have
    # deleted it since the lock).
    target = next((row for row in rows if row["id"] == event_id), None)
    if target is None:
        return None
    by_seq = {row["seq"]: row["id"] for row in rows}
    return Redelivery(event_id, target["order_id"], [by_seq[seq] for seq in sorted(by_seq)])


async def _due_now(
    queries: Queries, connection: Connection, *statements: AsyncIterator[asyncpg.Record]
) -> list[asyncpg.Record]:
    """Run an operator's statements that make events due, in turn, then wake the relays, in
    one transaction: the NOTIFY is sent on commit, so relays never wake before the rows show."""
    async with connection.transaction():
        return await _make_due(queries, connection, *statements)


async def _make_due(
    queries: Queries, connection: Connection, *statements: AsyncIterator[asyncpg.Record]
) -> list[asyncpg.Record]:
    """_due_now within a transaction of the caller's."""
    rows = [row for statement in statements async for row in statement]
    if rows:
        await queries.wake_relays(connection, sender=OPERATOR_SENDER)
    return rows


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
