"""What the Order Service and the process do to the relay: outages, endless answers,
blocked events, operators' retries, a relay that crashes."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from click.testing import CliRunner, Result

from service.db.sql import load_queries
from service.ops.outbox import outbox_group
from service.outbox.delivery import ERROR_EXCERPT_CHARS
from tests.support.order_stub import Answer, OrderServiceStub, ReceivedWebhook
from tests.support.relay_helpers import (
    FAST_OUTBOX,
    all_events,
    create_payments,
    outbox_status,
    refund,
    relay_settings,
    running_relay,
    wait_all_delivered,
    wait_until,
)
from tests.support.service import serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

sql: Any = load_queries()
checks: Any = load_test_queries()
# The whole retry schedule takes about a quarter of a second; the outage lasts far longer.
SHORT_SCHEDULE = (0.05, 0.1, 0.1)
OUTAGE_SECONDS = 3.0


async def cli(database_url: str, *args: str) -> Result:
    """The click commands run their own event loop, so they go on a thread."""
    env = {"PAYMENTS_DATABASE_URL": database_url}
    return await asyncio.to_thread(CliRunner().invoke, outbox_group, list(args), env=env)


@pytest.mark.slow  # the outage lasts seconds on purpose
async def test_an_outage_longer_than_the_retry_schedule_kills_no_event(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    order_stub.answer = lambda _: Answer(status=503, body="down for maintenance")
    orders = list(range(1, 41))
    settings = relay_settings(database_url, order_stub.url, retry_schedule_seconds=SHORT_SCHEDULE)
    async with running_relay(database_url, settings) as relay:
        payment_ids = await create_payments(database_url, orders)
        for payment_id in payment_ids:  # queued behind `completed`, during the outage
            await refund(db, payment_id)
        await asyncio.sleep(OUTAGE_SECONDS)
        assert relay.state == "paused"
        during = await all_events(db)
        calls_during = len(order_stub.received)
        order_stub.answer = lambda _: Answer()
        await wait_all_delivered(db, 20)
        assert relay.state == "running"

    assert [e for e in during if e["dead_at"] is not None] == []
    spent = [e["attempts"] for e in during]
    # Only the sends that told the outage apart from one event's failure count.
    assert sum(spent) <= settings.outbox.breaker_failures
    assert max(spent) <= 1
    events = await all_events(db)
    assert all(e["delivered_at"] is not None and e["dead_at"] is None for e in events)
    accepted = [c.webhook_id for c in order_stub.accepted]
    assert sorted(accepted) == sorted(str(e["id"]) for e in events)  # each once
    for order_id in orders:
        statuses = [c.body["payment_status"] for c in order_stub.accepted_for(order_id)]
        assert statuses == ["completed", "refunded"], order_id
    print(
        f"\n{len(events)} events, outage {OUTAGE_SECONDS:g}s against a retry schedule of "
        f"{sum(SHORT_SCHEDULE):g}s: {calls_during} calls during the outage, attempts spent per "
        f"event max {max(spent)}, {sum(spent)} in all; 0 dead; {len(events)} delivered after"
    )


async def test_an_endless_answer_neither_stalls_nor_bloats_the_relay(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    def endless(call: ReceivedWebhook) -> Answer:
        return Answer(status=500 if call.order_id == 1 else 200, endless=True)

    order_stub.answer = endless
    settings = relay_settings(database_url, order_stub.url, retry_schedule_seconds=(60.0,))
    started = time.monotonic()
    async with running_relay(database_url, settings):
        await create_payments(database_url, [1, 2, 3])

        async def recorded() -> bool:
            return all(e["attempts"] == 1 for e in await all_events(db))

        # Well inside the request timeout (2 s): the relay reads a few KiB and hangs up.
        await wait_until(recorded, 1.5, "every answer read and recorded")
    elapsed = time.monotonic() - started
    failed, *delivered = sorted(await all_events(db), key=lambda e: e["order_id"])
    assert all(e["delivered_at"] is not None for e in delivered)
    assert failed["last_error"].startswith("HTTP 500: xxxx")
    assert len(failed["last_error"]) <= len("HTTP 500: ") + ERROR_EXCERPT_CHARS
    # What the stub managed to write before the relay hung up: socket buffers, not 1 GiB.
    assert order_stub.streamed_bytes < 3 * 32 * 2**20
    written = order_stub.streamed_bytes / 2**20
    print(f"\n3 endless answers: {written:.1f} MiB written before the hang-up, {elapsed:.2f}s")


async def test_blocked_events_are_shown_and_an_operator_retry_sends_them_now(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    # The Order Service refuses order 5's `completed` (about that event, not an outage).
    def refuse_completed_of_5(call: ReceivedWebhook) -> Answer:
        if call.order_id == 5 and call.body["payment_status"] == "completed":
            return Answer(status=409, body="not yet")
        return Answer()

    order_stub.answer = refuse_completed_of_5
    settings = relay_settings(database_url, order_stub.url, retry_schedule_seconds=(0.05,))
    async with running_relay(database_url, settings):
        [payment_id] = await create_payments(database_url, [5])
        await refund(db, payment_id)
        await wait_until(lambda: _dead(db, 1), what="order 5's completed dead")

        completed, refunded = await all_events(db)
        undelivered = [dict(r) async for r in sql.ops_undelivered_events(db, max_rows=10)]
        assert [(r["state"], r["attempts"]) for r in undelivered] == [("dead", 2), ("blocked", 0)]
        assert undelivered[1]["blocked_by"] == completed["id"]
        status = await cli(database_url, "status", "--json")
        assert json.loads(status.output)["blocked"] == 1
        assert "blocked        1" in (await cli(database_url, "status")).output
        assert (await sql.outbox_lag(db))["blocked"] == 1  # readiness and the gauges
        [per_order] = [dict(r) async for r in sql.ops_delivery_attempts(db, order_id=5)]
        assert (per_order["blocked"], per_order["dead"]) == (1, 1)

        order_stub.answer = lambda _: Answer()
        retried = await cli(database_url, "retry", "--id", str(refunded["id"]))
        assert retried.exit_code == 0, retried.output
        assert f"{completed['id']}  order 5  (was dead" in retried.output
        assert "retried 2 events" in retried.output
        await wait_all_delivered(db)

    assert [c.body["payment_status"] for c in order_stub.accepted] == ["completed", "refunded"]
    assert (await cli(database_url, "retry")).exit_code == 2


async def test_an_operator_retry_sends_a_waiting_event_at_once(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    order_stub.answer = lambda call: Answer(status=502) if not order_stub.received[1:] else Answer()
    # The next attempt would be an hour away.
    settings = relay_settings(database_url, order_stub.url, retry_schedule_seconds=(3600.0,))
    async with running_relay(database_url, settings):
        await create_payments(database_url, [8])
        await wait_until(lambda: _attempts(db, 1), what="the first attempt failed")
        since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        nothing = await cli(database_url, "retry", "--since", "2100-01-01T00:00:00+00:00")
        assert "retried 0 events" in nothing.output
        retried = await cli(database_url, "retry", "--since", since, "--json")
        assert json.loads(retried.output)["retried"] == 1
        await wait_all_delivered(db, 5)
    [event] = await all_events(db)
    assert event["attempts"] == 2


async def test_an_operator_retry_makes_a_paused_relay_probe_at_once(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    order_stub.answer = lambda _: Answer(status=503)
    settings = relay_settings(
        database_url,
        order_stub.url,
        breaker_failures=2,
        breaker_min_pause_seconds=60.0,
        breaker_max_pause_seconds=60.0,
    )
    async with running_relay(database_url, settings) as relay:
        await create_payments(database_url, [1, 2, 3, 4])

        async def paused() -> bool:
            in_flight = (await outbox_status(db)).in_flight
            return relay.state == "paused" and in_flight == 0

        await wait_until(paused, what="the relay paused")
        order_stub.answer = lambda _: Answer()
        started = time.monotonic()
        retried = await cli(database_url, "retry", "--all", "--json")
        assert json.loads(retried.output)["retried"] == 4
        await wait_all_delivered(db, 10)  # not after the minute's pause
        waited = time.monotonic() - started
    assert waited < 10
    assert (await outbox_status(db)).dead == 0


async def test_a_crashed_relay_restarts_and_readiness_says_so(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    await checks.allow_blank_event_bodies(db)
    settings = make_settings(database_url, order_stub.url, outbox=FAST_OUTBOX)
    async with serve(settings) as service:
        [payment_id] = await create_payments(database_url, [2])
        await wait_all_delivered(db)
        [completed] = await all_events(db)
        # A row the relay cannot read: claiming it ends the relay with an error.
        broken = await checks.insert_blank_event(db, order_id=2, payment_id=payment_id)
        await refund(db, payment_id)  # blocked behind the broken one

        async def relay_state(wanted: str) -> bool:
            ready = await service.client.get("/health/ready")
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            return bool(ready.json()["relay"] == wanted)

        await wait_until(lambda: relay_state("restarting"), 10, "the relay restarting")
        await checks.set_event_body(db, event_id=broken, body=completed["body"])
        await wait_all_delivered(db, 20)
        await wait_until(lambda: relay_state("running"), 5, "the relay running again")
    statuses = [c.body["payment_status"] for c in order_stub.accepted_for(2)]
    assert statuses == ["completed", "completed", "refunded"]


async def _dead(db: asyncpg.Connection, count: int) -> bool:
    return (await outbox_status(db)).dead == count


async def _attempts(db: asyncpg.Connection, count: int) -> bool:
    return all(e["attempts"] == count for e in await all_events(db))
