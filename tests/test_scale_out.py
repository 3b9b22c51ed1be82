"""The README's scale-out guide, checked: several service instances and relays on one database.

Two app instances (each with its pool, reconciler and in-process relay) plus a
standalone relay share one PostgreSQL. Any instance may take any request; the
database's constraints and row locks keep the rules, and SKIP LOCKED claims
share the webhooks between the relays.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from service.db.sql import load_queries
from service.outbox import start_relay
from tests.support.order_stub import OrderServiceStub
from tests.support.service import serve
from tests.support.settings import make_settings

ORDERS = 150


@pytest.mark.slow
async def test_two_instances_and_a_standalone_relay_share_one_database(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    settings = make_settings(database_url, order_stub.url)
    relay = await start_relay(database_url, load_queries(), settings)
    try:
        async with serve(settings) as first, serve(settings) as second:
            instances = [first.client, second.client]

            # Every order paid through one instance and refunded through the other.
            created = await asyncio.gather(
                *(
                    instances[n % 2].post(
                        "/api/v1/payments/", json={"order_id": n, "amount": 1000 + n}
                    )
                    for n in range(1, ORDERS + 1)
                )
            )
            assert {r.status_code for r in created} == {201}
            refunded = await asyncio.gather(
                *(
                    instances[(n + 1) % 2].post(
                        "/api/v1/payments/refund",
                        json={"payment_id": created[n - 1].json()["id"], "reason": "scale-out"},
                    )
                    for n in range(1, ORDERS + 1, 3)
                )
            )
            assert {r.status_code for r in refunded} == {201}

            # One order raced on both instances: still exactly one payment.
            raced = await asyncio.gather(
                *(
                    client.post("/api/v1/payments/", json={"order_id": 10_000, "amount": 500})
                    for client in instances * 5
                )
            )
            assert sorted(r.status_code for r in raced) == [201] + [400] * 9

            # Either instance reads what the other wrote.
            some = created[0].json()
            assert (await second.client.get(f"/api/v1/payments/{some['id']}")).json()[
                "status"
            ] == "REFUNDED"

            events = ORDERS + len(refunded) + 1
            accepted = await order_stub.wait_for_accepted(events, 60)
    finally:
        await relay.stop()

    ids = Counter(call.webhook_id for call in accepted)
    assert len(ids) == events  # every event delivered
    assert max(ids.values()) == 1  # and by exactly one relay
    for n in range(1, ORDERS + 1, 3):
        statuses = [call.body["payment_status"] for call in order_stub.accepted_for(n)]
        assert statuses == ["completed", "refunded"]
