"""Housekeeping: deleting what has expired, a batch per transaction, one process at a time.

Every service process runs a round every few minutes (service/lifespan.py, through the
periodic loop); a transaction-level advisory lock per table lets one of them do the work
while the others skip it. A batch per transaction keeps each delete short: it never
holds many row locks, nor keeps vacuum from a table, for long.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from service.db.pool import BoundedPool
from service.db.queries import Queries

if TYPE_CHECKING:
    from service.db.queries import Executor

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_SECONDS = 300.0
PURGE_BATCH = 5000


async def purge_in_batches(
    connection: Executor,
    try_lock: Callable[[], Awaitable[bool]],
    purge_batch: Callable[[int], Awaitable[int]],
    batch: int,
) -> int | None:
    """Run `purge_batch(batch)` (a delete of at most that many rows, returning how many),
    a transaction each under `try_lock`, until a batch comes back short.

    Returns how many rows went, or None when another process held the lock from the
    start (it is purging: skipping is the point, not an error).
    """
    total = 0
    while True:
        async with connection.transaction():
            if not await try_lock():
                return total or None
            purged = await purge_batch(batch)
        total += purged
        if purged < batch:
            return total


async def purge_expired_idempotency_keys(
    queries: Queries, connection: Executor, *, batch: int = PURGE_BATCH
) -> int | None:
    """Delete the idempotency keys past their lifetime ([idempotency] ttl_hours)."""
    return await purge_in_batches(
        connection,
        lambda: queries.try_lock_idempotency_key_purge(connection),
        lambda limit: queries.purge_expired_idempotency_keys(connection, max_keys=limit),
        batch,
    )


async def purge_gateway_events(
    queries: Queries, connection: Executor, retention_days: float, *, batch: int = PURGE_BATCH
) -> int | None:
    """Delete the gateway callback ids received more than `retention_days` ago."""
    return await purge_in_batches(
        connection,
        lambda: queries.try_lock_gateway_event_purge(connection),
        lambda limit: queries.purge_gateway_events(
            connection, retention_days=retention_days, max_events=limit
        ),
        batch,
    )


async def purge_delivered_events(
    queries: Queries, connection: Executor, retention_days: float, *, batch: int = PURGE_BATCH
) -> int | None:
    """Delete the outbox events delivered more than `retention_days` ago (the relays'
    retention, and `payments outbox purge`); undelivered events, pending or dead, never."""
    return await purge_in_batches(
        connection,
        lambda: queries.try_lock_outbox_retention(connection),
        lambda limit: queries.purge_delivered_events(
            connection, retention_days=retention_days, max_events=limit
        ),
        batch,
    )


async def purge_expired(
    queries: Queries, pool: BoundedPool, callback_retention_days: float
) -> None:
    """One round of housekeeping, for the periodic loop of every service process."""
    async with pool.connection() as connection:
        keys = await purge_expired_idempotency_keys(queries, connection)
        callbacks = await purge_gateway_events(queries, connection, callback_retention_days)
    if keys:
        log.info("housekeeping deleted %d expired idempotency keys", keys)
    if callbacks:
        log.info("housekeeping deleted %d gateway callback ids past retention", callbacks)
