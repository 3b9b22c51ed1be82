"""Helpers of the outbox relay tests: payments that queue webhooks, relays, waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from service.commands import ReplayDeadEvents
from service.commands.outbox_operations import ReplayedEvent, replay_dead_events
from service.db.pool import create_pool
from service.db.reader import ReadSession
from service.db.sql import load_queries
from service.db.unit_of_work import UnitOfWork
from service.domain.rules import PaymentStatus
from service.outbox import RelayHandle, start_relay
from service.queries.outbox_health import OutboxStatus
from service.queries.outbox_health import outbox_status as read_outbox_status
from service.settings import DatabaseSettings, Settings
from tests.support.payments import insert_processing, settle
from tests.support.payments import refund as refund_payment
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()

# Fast retries, a short poll, a timeout well inside the lease: tests finish in seconds.
FAST_OUTBOX: dict[str, Any] = {
    "poll_interval_seconds": 0.2,
    "retry_schedule_seconds": (0.05, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1),
    "request_timeout_seconds": 2.0,
    "lease_seconds": 10.0,
    "breaker_min_pause_seconds": 0.1,
    "breaker_max_pause_seconds": 0.4,
}


def relay_settings(
    database_url: str, stub_url: str, *, webhook_secret: str = "", **outbox: Any
) -> Settings:
    return make_settings(
        database_url,
        stub_url,
        order_service={"webhook_secret": webhook_secret},
        outbox={**FAST_OUTBOX, **outbox},
    )


async def create_payments(
    database_url: str, order_ids: list[int], *, connections: int = 4
) -> list[int]:
    """Completed payments (one outbox row each) through the service's SQL; their ids.

    Spread over a few connections, a transaction per 100 payments: one commit per
    payment made the 2,000-event tests spend most of their time in fsync.
    """
    q = load_queries()

    async def share(order_ids: list[int]) -> dict[int, int]:
        conn = await asyncpg.connect(database_url)
        try:
            ids = {}
            for start in range(0, len(order_ids), 100):
                async with conn.transaction():
                    for order_id in order_ids[start : start + 100]:
                        row = await insert_processing(conn, order_id)
                        await settle(
                            conn,
                            row["id"],
                            row["transaction_id"],
                            PaymentStatus.COMPLETED,
                            request_id="t",
                        )
                        ids[order_id] = int(row["id"])
                # As the service does: the relays are woken after the commit.
                await q.wake_relays(conn, sender="tests")
            return ids
        finally:
            await conn.close()

    by_order: dict[int, int] = {}
    for ids in await asyncio.gather(
        *(share(order_ids[i::connections]) for i in range(connections))
    ):
        by_order.update(ids)
    return [by_order[order_id] for order_id in order_ids]


async def refund(conn: asyncpg.Connection, payment_id: int) -> None:
    """A refund of the payment, its `refunded` webhook queued, and the relays woken."""
    await refund_payment(conn, payment_id, request_id="t")
    await load_queries().wake_relays(conn, sender="tests")


async def all_events(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return [row async for row in checks.all_outbox_events(conn)]


async def wait_until(
    check: Callable[[], Awaitable[bool]], within: float = 15.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        # Short: the condition is usually met within milliseconds; a check is one query.
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} not reached within {within}s")


async def wait_all_delivered(conn: asyncpg.Connection, within: float = 15.0) -> None:
    async def delivered() -> bool:
        return all(row["delivered_at"] is not None for row in await all_events(conn))

    await wait_until(delivered, within, "every outbox event delivered")


@asynccontextmanager
async def running_relay(url: str, settings: Settings, **options: Any) -> AsyncIterator[RelayHandle]:
    handle = await start_relay(url, load_queries(), settings, **options)
    try:
        yield handle
    finally:
        await handle.stop()


async def outbox_status(conn: asyncpg.Connection) -> OutboxStatus:
    """The operators' summary of the outbox, as `payments outbox status` reads it."""
    return await read_outbox_status(ReadSession(conn, load_queries()))


async def replay_dead(database_url: str, **filters: Any) -> list[ReplayedEvent]:
    """An operator's replay of dead events, through the write side's command."""
    pool = await create_pool(database_url, DatabaseSettings(pool_min_size=1, pool_max_size=1))
    try:
        return await replay_dead_events(
            ReplayDeadEvents(**filters), UnitOfWork(pool, load_queries())
        )
    finally:
        await pool.close()
