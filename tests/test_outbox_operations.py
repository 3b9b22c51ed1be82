"""Operators' side: dead events kept and replayed, status, retention."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from click.testing import CliRunner, Result

from service.db.housekeeping import purge_delivered_events
from service.db.pool import create_pool
from service.db.sql import load_queries
from service.ops.outbox import outbox_group
from service.outbox import OutboxRelay
from tests.support.order_stub import Answer, OrderServiceStub
from tests.support.relay_helpers import (
    all_events,
    create_payments,
    outbox_status,
    relay_settings,
    replay_dead,
    running_relay,
    wait_until,
)
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: every call is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def cli(database_url: str, *args: str) -> Result:
    """The click commands run their own event loop, so they go on a thread."""
    runner = CliRunner()
    env = {"PAYMENTS_DATABASE_URL": database_url}
    return await asyncio.to_thread(runner.invoke, outbox_group, list(args), env=env)


async def test_dead_after_last_attempt_then_replayed(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    # Refused one by one (a 4xx is about the event): an outage would kill nothing.
    order_stub.answer = lambda _: Answer(status=422, body="unknown order")
    refusing = relay_settings(database_url, order_stub.url, retry_schedule_seconds=(0.05, 0.05))
    async with running_relay(database_url, refusing):
        await create_payments(database_url, [1, 2, 3])

        async def all_dead() -> bool:
            return (await outbox_status(db)).dead == 3

        await wait_until(all_dead, what="three dead events")

    events = await all_events(db)
    for event in events:
        assert event["attempts"] == 3  # the first try and one per scheduled retry
        assert event["dead_at"] is not None and event["delivered_at"] is None
        assert event["last_error"] == "HTTP 422: unknown order"
        assert event["claimed_by"] is None
    status = await cli(database_url, "status", "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.output) | {"oldest_pending_seconds": None} == {
        "pending": 0,
        "in_flight": 0,
        "blocked": 0,
        "dead": 3,
        "delivered": 0,
        "oldest_pending_seconds": None,
    }
    first, second, third = sorted(events, key=lambda e: e["order_id"])
    order_stub.received.clear()
    order_stub.answer = lambda _: Answer()

    up = relay_settings(database_url, order_stub.url)
    async with running_relay(database_url, up):
        replayed = await replay_dead(database_url, order_id=1)
        assert [event.id for event in replayed] == [first["id"]]
        await order_stub.wait_for_accepted(1)

        by_id = await cli(database_url, "replay", "--id", str(second["id"]))
        assert by_id.exit_code == 0, by_id.output
        assert "replayed 1 dead events" in by_id.output
        await order_stub.wait_for_accepted(2)

        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        by_time = await cli(database_url, "replay", "--since", since, "--json")
        assert json.loads(by_time.output)["replayed"] == 1
        await order_stub.wait_for_accepted(3)

        nothing = await cli(database_url, "replay", "--all-dead", "--json")
        assert json.loads(nothing.output)["replayed"] == 0
        refused = await cli(database_url, "replay")
        assert refused.exit_code == 2

    assert [c.webhook_id for c in order_stub.accepted] == [
        str(e["id"]) for e in (first, second, third)
    ]
    for event in await all_events(db):
        assert event["delivered_at"] is not None and event["dead_at"] is None
        assert event["attempts"] == 1  # a replay starts a fresh set of attempts


async def test_retention_deletes_only_old_delivered_events(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    settings = relay_settings(database_url, order_stub.url)
    async with running_relay(database_url, settings):
        await create_payments(database_url, [1, 2, 3, 4])
        await order_stub.wait_for_accepted(4)
        await wait_until(lambda: _delivered_count(db, 4), what="four delivered")
    # An undelivered event, however old, is never deleted.
    down = relay_settings(database_url, closed_port_url(), retry_schedule_seconds=())
    async with running_relay(database_url, down):
        await create_payments(database_url, [5])
        await wait_until(lambda: _dead_count(db, 1), what="one dead event")
    old_a, old_b, recent_a, recent_b, _ = await all_events(db)
    for event, days in ((old_a, 10), (old_b, 10), (recent_a, 1)):
        await checks.age_delivered_event(db, event_id=event["id"], days=days)

    assert await purge_delivered_events(load_queries(), db, retention_days=30) == 0
    purged = await cli(database_url, "purge", "--json")  # litestar.toml: 7 days
    assert json.loads(purged.output) == {"purged": 2, "busy": False}
    left = {e["id"] for e in await all_events(db)}
    assert {recent_a["id"], recent_b["id"]} <= left and len(left) == 3
    assert await purge_delivered_events(load_queries(), db, retention_days=0.5) == 1

    # The relay runs retention by itself.
    pool = await create_pool(database_url, settings.database)
    relay = OutboxRelay(pool, load_queries(), settings, listen_url=None, retention_interval=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await checks.age_delivered_event(db, event_id=recent_b["id"], days=8)
    await wait_until(lambda: _event_count(db, 1), what="the relay's retention")
    stop.set()
    await task
    await pool.close()
    [dead] = await all_events(db)
    assert dead["dead_at"] is not None


async def _event_count(db: asyncpg.Connection, count: int) -> bool:
    return len(await all_events(db)) == count


async def _delivered_count(db: asyncpg.Connection, count: int) -> bool:
    return (await outbox_status(db)).delivered == count


async def _dead_count(db: asyncpg.Connection, count: int) -> bool:
    return (await outbox_status(db)).dead == count


async def test_status_in_plain_text(database_url: str, db: asyncpg.Connection) -> None:
    await create_payments(database_url, [1, 2])
    result = await cli(database_url, "status")
    assert result.exit_code == 0, result.output
    lines = dict(
        line.split(None, 1)
        for line in result.output.replace("in flight", "in_flight")
        .replace("oldest pending", "oldest_pending")
        .splitlines()
    )
    assert lines["pending"] == "2" and lines["dead"] == "0"
    assert lines["oldest_pending"].endswith("s")
