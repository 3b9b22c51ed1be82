"""Housekeeping (service/db/housekeeping.py): expired idempotency keys and gateway callback
ids past retention are deleted in batches, by one process at a time, young ones kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from service.db.housekeeping import (
    purge_expired,
    purge_expired_idempotency_keys,
    purge_gateway_events,
)
from service.db.pool import create_pool
from service.db.sql import load_queries
from service.settings import DatabaseSettings
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()
queries = load_queries()


@pytest.fixture
async def other(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A second connection: another process's purger."""
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


async def key_names(db: asyncpg.Connection, prefix: str) -> list[str]:
    return [row["key"] async for row in checks.idempotency_keys_named(db, prefix=prefix)]


async def callback_ids(db: asyncpg.Connection, prefix: str) -> list[str]:
    return [row["webhook_id"] async for row in checks.gateway_event_ids_named(db, prefix=prefix)]


async def test_expired_idempotency_keys_go_in_several_batches_and_live_ones_stay(
    db: asyncpg.Connection,
) -> None:
    await checks.insert_keys_expiring(db, prefix="expired-", count=25, seconds=-60)
    await checks.insert_keys_expiring(db, prefix="live-", count=3, seconds=3600)

    purged = await purge_expired_idempotency_keys(queries, db, batch=10)

    assert purged == 25  # more than one batch of 10 holds
    assert await key_names(db, "expired-") == []
    assert await key_names(db, "live-") == ["live-1", "live-2", "live-3"]
    assert await purge_expired_idempotency_keys(queries, db, batch=10) == 0


async def test_gateway_callback_ids_past_retention_go_in_several_batches_and_young_ones_stay(
    db: asyncpg.Connection,
) -> None:
    await checks.insert_gateway_events_received(db, prefix="old-", count=23, days_ago=31)
    await checks.insert_gateway_events_received(db, prefix="young-", count=2, days_ago=29)

    purged = await purge_gateway_events(queries, db, retention_days=30, batch=10)

    assert purged == 23
    assert await callback_ids(db, "old-") == []
    assert await callback_ids(db, "young-") == ["young-1", "young-2"]


async def test_a_purger_skips_without_error_while_another_holds_the_lock(
    db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    await checks.insert_keys_expiring(db, prefix="expired-", count=5, seconds=-60)
    await checks.insert_gateway_events_received(db, prefix="old-", count=5, days_ago=31)

    async with other.transaction():
        assert await queries.try_lock_idempotency_key_purge(other) is True
        assert await queries.try_lock_gateway_event_purge(other) is True
        keys_skipped = await purge_expired_idempotency_keys(queries, db, batch=2)
        callbacks_skipped = await purge_gateway_events(queries, db, retention_days=30, batch=2)
    keys = await purge_expired_idempotency_keys(queries, db, batch=2)
    callbacks = await purge_gateway_events(queries, db, retention_days=30, batch=2)

    assert (keys_skipped, callbacks_skipped) == (None, None)
    assert (keys, callbacks) == (5, 5)  # the lock ended with the other's transaction


async def test_a_key_a_claim_holds_right_now_is_skipped_not_waited_for(
    db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    await checks.insert_keys_expiring(db, prefix="expired-", count=3, seconds=-60)

    async with other.transaction():
        await checks.lock_idempotency_key(other, key="expired-2")
        # A generous deadline: a purge that waited on the row would never end here.
        purged = await asyncio.wait_for(purge_expired_idempotency_keys(queries, db), 30)

    assert purged == 2
    assert await key_names(db, "expired-") == ["expired-2"]


async def test_one_housekeeping_round_purges_both(
    database_url: str, db: asyncpg.Connection
) -> None:
    """What every service process runs every few minutes (service/lifespan.py)."""
    await checks.insert_keys_expiring(db, prefix="expired-", count=4, seconds=-60)
    await checks.insert_gateway_events_received(db, prefix="old-", count=4, days_ago=8)
    await checks.insert_gateway_events_received(db, prefix="young-", count=1, days_ago=6)
    pool = await create_pool(database_url, DatabaseSettings(pool_min_size=1, pool_max_size=2))
    try:
        await purge_expired(queries, pool, callback_retention_days=7)
    finally:
        await pool.close()

    assert await key_names(db, "expired-") == []
    assert await callback_ids(db, "") == ["young-1"]
