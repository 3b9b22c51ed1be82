"""An order's events arrive in the order they happened, retries included."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from service.db.sql import load_queries
from tests.support.order_stub import Answer, OrderServiceStub, ReceivedWebhook
from tests.support.relay_helpers import (
    all_events,
    create_payments,
    outbox_status,
    refund,
    relay_settings,
    replay_dead,
    running_relay,
    wait_all_delivered,
    wait_until,
)

ORDERS = list(range(1, 31))


async def test_completed_then_refunded_arrive_in_order_even_when_retried(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    def completed_fails_twice(call: ReceivedWebhook) -> Answer:
        if call.body["payment_status"] != "completed":
            return Answer()
        tries = sum(1 for c in order_stub.received if c.webhook_id == call.webhook_id)
        return Answer(status=500) if tries <= 2 else Answer()

    order_stub.answer = completed_fails_twice
    settings = relay_settings(database_url, order_stub.url)
    async with running_relay(database_url, settings):
        payment_ids = await create_payments(database_url, ORDERS)
        # Refunded right away: the `refunded` event is queued while `completed` is retried.
        for payment_id in payment_ids:
            await refund(db, payment_id)
        await order_stub.wait_for_accepted(2 * len(ORDERS), 20)
        await wait_all_delivered(db)

    for order_id in ORDERS:
        received = [c.body["payment_status"] for c in order_stub.received if c.order_id == order_id]
        accepted = [c.body["payment_status"] for c in order_stub.accepted_for(order_id)]
        assert received == ["completed", "completed", "completed", "refunded"], order_id
        assert accepted == ["completed", "refunded"], order_id


async def test_a_dead_event_holds_back_the_later_events_of_its_order(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    order_stub.answer = lambda call: (
        Answer(status=500) if call.body["payment_status"] == "completed" else Answer()
    )
    settings = relay_settings(database_url, order_stub.url, retry_schedule_seconds=(0.05,))
    async with running_relay(database_url, settings):
        [payment_id] = await create_payments(database_url, [5])
        await refund(db, payment_id)

        async def one_dead() -> bool:
            return (await outbox_status(db)).dead == 1

        await wait_until(one_dead, what="the completed event dead")
        status = await outbox_status(db)
        assert status.pending == 1  # the refund waits behind the dead event
        assert [c.body["payment_status"] for c in order_stub.received] == ["completed"] * 2

        order_stub.answer = lambda _: Answer()
        await replay_dead(database_url, order_id=5)
        await wait_all_delivered(db)

    assert [c.body["payment_status"] for c in order_stub.accepted] == ["completed", "refunded"]


async def test_a_redelivery_behind_an_event_in_flight_waits_for_that_send_and_resends_it(
    database_url: str, db: asyncpg.Connection
) -> None:
    sql = load_queries()

    async def claim(relay_id: str) -> list[str]:
        rows = sql.claim_due_events(db, relay_id=relay_id, lease_seconds=60.0, max_events=10)
        return [row["body"] async for row in rows]

    async def record_delivery(event_id: Any) -> None:
        await sql.record_outcomes(
            db,
            relay_id="any",
            ids=[event_id],
            results=["delivered"],
            errors=[""],
            delays_seconds=[0.0],
            dead=[False],
        )

    [payment_id] = await create_payments(database_url, [5])
    await refund(db, payment_id)
    completed, refunded = await all_events(db)
    assert len(await claim("first")) == 1
    await record_delivery(completed["id"])
    assert len(await claim("first")) == 1  # refunded, now being sent

    async with db.transaction():
        reopened = [row["id"] async for row in sql.reopen_event(db, event_id=completed["id"])]
    # Not while refunded is in flight: one send at a time per order.
    assert await claim("second") == []
    # That send started before the redelivery: it does not count.
    await record_delivery(refunded["id"])
    assert [e["delivered_at"] is None for e in await all_events(db)] == [True, True]
    sent = await claim("second")
    assert [json.loads(body)["payment_status"] for body in sent] == ["completed"]
    await record_delivery(completed["id"])
    sent = await claim("second")
    assert [json.loads(body)["payment_status"] for body in sent] == ["refunded"]
    await record_delivery(refunded["id"])
    events = await all_events(db)
    assert all(e["delivered_at"] is not None for e in events)
    assert [e["attempts"] for e in events] == [1, 1]  # fresh attempts for both, each sent once
    assert set(reopened) == {completed["id"], refunded["id"]}
