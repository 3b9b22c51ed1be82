"""Several relays share one database; a relay stops cleanly."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import asyncpg
import pytest

from service.outbox.listener import APPLICATION_NAME as LISTENER_APPLICATION_NAME
from tests.support.order_stub import Answer, OrderServiceStub
from tests.support.relay_helpers import (
    all_events,
    create_payments,
    outbox_status,
    relay_settings,
    running_relay,
    wait_all_delivered,
    wait_until,
)
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()
# The application_name of the service's pools (service/db/pool.py), the relay's included.
POOL_APPLICATION_NAME = "payments"

EVENTS = 2000


@pytest.mark.slow
async def test_three_relays_deliver_every_event_exactly_once(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    await create_payments(database_url, list(range(1, EVENTS + 1)), connections=8)
    settings = relay_settings(database_url, order_stub.url)
    started = time.monotonic()
    async with (
        running_relay(database_url, settings) as one,
        running_relay(database_url, settings) as two,
        running_relay(database_url, settings) as three,
    ):
        await order_stub.wait_for_accepted(EVENTS, 30)
        drained = time.monotonic() - started
        await wait_all_delivered(db)
        relays = (one.relay, two.relay, three.relay)

    received = Counter(call.webhook_id for call in order_stub.received)
    events = await all_events(db)
    # An event claimed by two relays at once would have been sent twice.
    assert len(order_stub.received) == EVENTS
    assert set(received) == {str(e["id"]) for e in events}
    assert max(received.values()) == 1
    assert all(e["attempts"] == 1 and e["claimed_by"] is None for e in events)
    assert sum(relay.delivered for relay in relays) == EVENTS
    print(
        f"\n{EVENTS} events, 3 relays, {len(order_stub.received)} deliveries, "
        f"0 duplicates, drained in {drained:.2f}s "
        f"(per relay: {[relay.delivered for relay in relays]})"
    )


async def test_graceful_stop_finishes_in_flight_sends_and_releases_the_rest(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    order_stub.answer = lambda _: Answer(delay=1.0)
    await create_payments(database_url, list(range(1, 21)))
    settings = relay_settings(database_url, order_stub.url, concurrency=2, batch_size=20)
    async with running_relay(database_url, settings) as relay:

        async def two_in_flight() -> bool:
            return len(order_stub.received) == 2

        await wait_until(two_in_flight, what="two sends in flight")
        status = await outbox_status(db)
        assert status.in_flight == 20  # all claimed, two of them being sent
        await relay.stop()

    claimed = [row async for row in checks.claimed_outbox_events(db)]
    assert claimed == []
    events = await all_events(db)
    delivered = [e for e in events if e["delivered_at"] is not None]
    assert len(delivered) == 2  # the two in flight finished within the grace
    assert all(e["attempts"] == 0 for e in events if e["delivered_at"] is None)
    assert len(order_stub.received) == 2

    order_stub.answer = lambda _: Answer()
    async with running_relay(database_url, settings):
        await wait_all_delivered(db)
    assert len(order_stub.received) == 20  # the finished two were not sent again
    assert len({call.webhook_id for call in order_stub.received}) == 20


async def sessions(db: asyncpg.Connection, application_name: str) -> int:
    rows = checks.sessions_of_application(db, application_name=application_name)
    return len([row async for row in rows])


async def relay_sessions(db: asyncpg.Connection) -> int:
    """The relay's connections to this test's database: its pool's and its LISTEN one."""
    return await sessions(db, POOL_APPLICATION_NAME) + await sessions(db, LISTENER_APPLICATION_NAME)


async def test_stopping_twice_is_harmless(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    settings = relay_settings(database_url, order_stub.url, poll_interval_seconds=30.0)
    async with running_relay(database_url, settings) as relay:

        async def listening() -> bool:
            return await sessions(db, LISTENER_APPLICATION_NAME) == 1

        async def all_closed() -> bool:
            return await relay_sessions(db) == 0

        await wait_until(listening, what="the relay listening")
        await relay.stop()

        # Stopped: the loop ended on its own (not cancelled, no error) and every connection
        # of the relay is closed.
        assert relay.task.done() and not relay.task.cancelled()
        assert relay.task.exception() is None
        await wait_until(all_closed, what="the relay's connections closed")
    # Leaving the block stopped it a second time: no error, nothing reopened.
    assert await relay_sessions(db) == 0

    # The outbox is as usable as before: a new relay delivers.
    await create_payments(database_url, [1])
    async with running_relay(database_url, settings):
        await order_stub.wait_for_accepted(1)
