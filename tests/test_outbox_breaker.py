"""What opens a relay's circuit breaker and what does not: orders the Order Service
refuses on their own never pause the others, an outage does, and its probes take the
waiting events in turn."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.order_stub import Answer, OrderServiceStub, ReceivedWebhook
from tests.support.relay_helpers import (
    all_events,
    create_payments,
    relay_settings,
    running_relay,
    wait_all_delivered,
    wait_until,
)
from tests.support.service import free_port, serve

# Orders whose webhook handler is broken at the Order Service: a 500 for each of their
# webhooks, while it answers every other order.
POISON_ORDERS = (1, 2)
# Enough for the old rule (a few failures in a row, of more than one event) to open on
# two poison orders alone; the new one needs that many distinct orders.
BREAKER_FAILURES = 3
# How long any other order's webhook may take to arrive: a relay that holds every order
# behind a probe misses it by far, a working one takes milliseconds.
OTHER_ORDER_WITHIN = 3.0


async def pay(client: httpx.AsyncClient, order_id: int) -> None:
    response = await client.post("/api/v1/payments/", json={"order_id": order_id, "amount": 1000})
    assert response.status_code == 201, response.text


async def test_two_orders_the_order_service_refuses_never_hold_back_the_others(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    def broken_for_two_orders(call: ReceivedWebhook) -> Answer:
        if call.order_id in POISON_ORDERS:
            return Answer(status=500, body="handler bug")
        return Answer()

    order_stub.answer = broken_for_two_orders
    settings = relay_settings(database_url, order_stub.url, breaker_failures=BREAKER_FAILURES)
    schedule = settings.outbox.retry_schedule_seconds
    relay_states: list[str] = []

    async def poison_dead() -> bool:
        events = [e for e in await all_events(db) if e["order_id"] in POISON_ORDERS]
        return len(events) == len(POISON_ORDERS) and all(e["dead_at"] for e in events)

    async with serve(settings) as service:

        async def watch_readiness() -> None:
            while True:
                ready = (await service.client.get("/health/ready")).json()
                relay_states.append(ready["relay"])
                await asyncio.sleep(0.02)

        for order_id in POISON_ORDERS:
            await pay(service.client, order_id)

        async def poison_failed_in_a_row() -> bool:
            return len(order_stub.received) >= BREAKER_FAILURES

        # A quiet moment first: the poison orders' failures come in a row, no success between.
        await wait_until(poison_failed_in_a_row, what="the poison orders' first failures")
        watcher: asyncio.Task[None] | None = None
        other_orders = 0
        try:
            # Other orders are paid one after another, all along the poison orders'
            # retries and beyond their death; each one's webhook must arrive promptly.
            while other_orders < 40 or not await poison_dead():
                order_id = 100 + other_orders
                await pay(service.client, order_id)

                async def arrived(order_id: int = order_id) -> bool:
                    return bool(order_stub.accepted_for(order_id))

                await wait_until(arrived, OTHER_ORDER_WITHIN, f"order {order_id}'s webhook")
                other_orders += 1
                if watcher is None:  # other orders flow from here on
                    watcher = asyncio.create_task(watch_readiness())
                assert other_orders < 1000, "the poison orders never died"
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

    assert relay_states and "paused" not in relay_states, set(relay_states)
    events = await all_events(db)
    poison = [e for e in events if e["order_id"] in POISON_ORDERS]
    assert [(e["attempts"], e["dead_at"] is not None) for e in poison] == [
        (len(schedule) + 1, True)
    ] * len(POISON_ORDERS)
    assert all(e["last_error"] == "HTTP 500: handler bug" for e in poison)
    others = [e for e in events if e["order_id"] not in POISON_ORDERS]
    assert len(others) == other_orders
    assert all(e["delivered_at"] is not None and e["attempts"] == 1 for e in others)


@pytest.mark.slow  # the outage lasts longer than the retry schedule on purpose
@pytest.mark.parametrize("outage", ["every order 503", "connection refused"])
async def test_an_outage_opens_the_breaker_spends_no_attempts_and_probes_each_event_in_turn(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection, outage: str
) -> None:
    order_stub.answer = lambda _: Answer(status=503, body="down for maintenance")
    # Nothing listens on a free port: every connection is refused.
    url = order_stub.url if outage == "every order 503" else f"http://127.0.0.1:{free_port()}"
    settings = relay_settings(database_url, url, breaker_failures=2)
    schedule = settings.outbox.retry_schedule_seconds
    async with running_relay(database_url, settings) as relay:
        await create_payments(database_url, [1, 2, 3, 4])

        async def paused() -> bool:
            return relay.state == "paused"

        await wait_until(paused, what="the relay paused")
        # Past the sends in flight when it opened: from here on, one probe at a time.
        await asyncio.sleep(0.3)
        last_sent = {e["id"]: e["last_attempt_at"] for e in await all_events(db)}

        async def each_event_probed_since() -> bool:
            events = await all_events(db)
            return all(
                e["last_attempt_at"] is not None
                and (last_sent[e["id"]] is None or e["last_attempt_at"] > last_sent[e["id"]])
                for e in events
            )

        # A failed probe moves its event's next attempt, so the next probe is another.
        await wait_until(each_event_probed_since, 10, "a probe with each waiting event")
        # Longer than the whole retry schedule: an outage kills no event.
        await asyncio.sleep(sum(schedule) * 1.5)
        assert relay.state == "paused"
        during = await all_events(db)
        if outage == "every order 503":
            order_stub.answer = lambda _: Answer()
            await wait_all_delivered(db)
            assert relay.state == "running"

    assert [e for e in during if e["dead_at"] is not None] == []
    spent = [e["attempts"] for e in during]
    # Only the sends that opened the breaker spent an attempt.
    assert sum(spent) <= settings.outbox.breaker_failures
    assert max(spent) <= 1
    if outage == "every order 503":
        accepted: Any = {c.webhook_id for c in order_stub.accepted}
        assert accepted == {str(e["id"]) for e in during}


async def test_an_order_refused_on_its_own_after_an_outage_does_not_keep_the_relay_paused(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    order_stub.answer = lambda _: Answer(status=503)
    settings = relay_settings(database_url, order_stub.url, breaker_failures=2)
    schedule = settings.outbox.retry_schedule_seconds
    await create_payments(database_url, [1])  # the oldest event, the first probe
    await create_payments(database_url, [2, 3, 4])
    async with running_relay(database_url, settings) as relay:

        async def paused() -> bool:
            return relay.state == "paused"

        await wait_until(paused, what="the relay paused")
        # Back, except for the oldest order, whose handler now breaks on it: probes with
        # it keep failing, the ones with the others get through.
        order_stub.answer = lambda call: Answer(status=500) if call.order_id == 1 else Answer()

        async def others_delivered() -> bool:
            events = await all_events(db)
            return all(e["delivered_at"] is not None for e in events if e["order_id"] != 1)

        await wait_until(others_delivered, 10, "the other orders delivered")

        async def oldest_dead() -> bool:
            return all(e["dead_at"] is not None for e in await all_events(db) if e["order_id"] == 1)

        await wait_until(oldest_dead, 10, "order 1's event dead on its schedule")
        assert relay.state == "running"
    [oldest] = [e for e in await all_events(db) if e["order_id"] == 1]
    assert oldest["attempts"] == len(schedule) + 1
