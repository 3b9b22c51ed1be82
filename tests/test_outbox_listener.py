"""NOTIFY only makes delivery prompt; polling and reconnection make it certain."""

from __future__ import annotations

from typing import Any

import asyncpg

from service.outbox.listener import APPLICATION_NAME
from tests.support.order_stub import OrderServiceStub
from tests.support.relay_helpers import (
    create_payments,
    relay_settings,
    running_relay,
    wait_until,
)
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()


async def listener_pids(db: asyncpg.Connection) -> set[int]:
    rows = checks.sessions_of_application(db, application_name=APPLICATION_NAME)
    return {row["pid"] async for row in rows}


async def drop_listeners(db: asyncpg.Connection) -> int:
    """Terminate the relays' LISTEN connections to this database; how many there were."""
    dropped: int = await checks.terminate_sessions_of_application(
        db, application_name=APPLICATION_NAME
    )
    return dropped


async def test_without_notifications_polling_delivers(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    settings = relay_settings(database_url, order_stub.url, poll_interval_seconds=0.3)
    async with running_relay(database_url, settings, listen=False):
        assert await listener_pids(db) == set()  # every NOTIFY goes unheard
        await create_payments(database_url, [1, 2, 3])
        await order_stub.wait_for_accepted(3)


async def test_dropped_listener_reconnects_and_wakes_the_relay(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    # A poll too slow to matter here: only a working listener delivers in time.
    settings = relay_settings(database_url, order_stub.url, poll_interval_seconds=60.0)
    async with running_relay(database_url, settings) as relay:
        await wait_until(lambda: _has_listener(db), what="the listener connected")
        [before] = await listener_pids(db)
        await create_payments(database_url, [1])
        await order_stub.wait_for_accepted(1)

        assert await drop_listeners(db) == 1
        await wait_until(lambda: _has_listener(db, not_pid=before), what="the listener back")
        await create_payments(database_url, [2])
        await order_stub.wait_for_accepted(2)
        assert relay.task.done() is False


async def test_events_committed_while_the_listener_was_down_are_not_lost(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    settings = relay_settings(database_url, order_stub.url, poll_interval_seconds=0.5)
    async with running_relay(database_url, settings):
        await wait_until(lambda: _has_listener(db), what="the listener connected")
        # Repeatedly cut the listener while events commit: some NOTIFYs find nobody.
        for order_id in range(1, 11):
            await drop_listeners(db)
            await create_payments(database_url, [order_id])
        await order_stub.wait_for_accepted(10)
    assert len(order_stub.received) == 10


async def _has_listener(db: asyncpg.Connection, not_pid: int | None = None) -> bool:
    pids = await listener_pids(db)
    return bool(pids) and not_pid not in pids
