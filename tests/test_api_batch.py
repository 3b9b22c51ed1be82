"""POST /api/v1/payments/batch over real HTTP on a real PostgreSQL (CONTRACT.md, "Batch").

Each entry must end exactly as if it had been sent alone to POST /api/v1/payments/: the
tests send the same bodies both ways and compare. What is stored is read back through the
API and the Order Service stub, so no SQL of the tests' own is needed here.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Any

import httpx
import pytest

from service.gateway import ChargeDecision, ChargeRequest, Gateway
from tests.support.gateways import GatewayAround, wrap_api_gateway
from tests.support.order_stub import OrderServiceStub
from tests.support.problems import PROBLEMS, assert_problem
from tests.support.relay_helpers import wait_until
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings

BATCH = "/api/v1/payments/batch"
SINGLE = "/api/v1/payments/"
JSON_HEADERS = {"content-type": "application/json"}
DECLINED_AMOUNT = 666
SINGLE_LIMIT = 16384  # [server] max_body_bytes
BATCH_LIMIT = 1048576  # [server] max_batch_body_bytes


def running(
    database_url: str, order_stub: OrderServiceStub, **sections: dict[str, Any]
) -> AbstractAsyncContextManager[RunningService]:
    return serve(make_settings(database_url, order_stub.url, **sections))


def envelope(*entries: str) -> str:
    """A batch body from raw JSON entries, so each literal reaches the service as written."""
    return '{"payments": [' + ", ".join(entries) + "]}"


async def post_batch(
    client: httpx.AsyncClient, body: str | bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(BATCH, content=body, headers={**JSON_HEADERS, **(headers or {})})


async def results_of(client: httpx.AsyncClient, body: str | bytes) -> list[dict[str, Any]]:
    response = await post_batch(client, body)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"results"}
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def entry(order_id: int, amount: int = 5000) -> str:
    return json.dumps({"order_id": order_id, "amount": amount})


async def payment_of_order(client: httpx.AsyncClient, order_id: int) -> dict[str, Any] | None:
    response = await client.get(f"/api/v1/payments/order/{order_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    payment: dict[str, Any] = response.json()
    payment.pop("refunds")
    payment.pop("attempts")
    return payment


async def webhooks_per_order(stub: OrderServiceStub, expected: int) -> Counter[int]:
    """Once `expected` webhooks arrived, and a little longer for any extra one."""
    await stub.wait_for_accepted(expected)
    await asyncio.sleep(0.3)
    return Counter(call.order_id for call in stub.accepted)


# --- the answer, item by item ----------------------------------------------------------------


async def test_a_mixed_batch_answers_each_entry_in_request_order(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    async with running(
        database_url, order_stub, gateway={"decline_amounts": [DECLINED_AMOUNT]}
    ) as svc:
        existing = await svc.client.post(SINGLE, json={"order_id": 50, "amount": 1000})
        assert existing.status_code == 201, existing.text
        body = envelope(
            entry(1),  # 0: paid
            entry(2, 99),  # 1: breaks the amount rule
            '{"order_id": "x", "amount": 5000}',  # 2: malformed
            entry(50),  # 3: the order already has a payment
            entry(1, 7000),  # 4: a duplicate of entry 0
            entry(3, DECLINED_AMOUNT),  # 5: declined
            "[1, 2]",  # 6: not an object
            '{"order_id": 4, "amount": 5000, "tip": 1}',  # 7: unknown field
        )
        results = await results_of(svc.client, body)
        orders = (1, 2, 3, 4, 50)
        stored: dict[int, Any] = {n: await payment_of_order(svc.client, n) for n in orders}
        webhooks = await webhooks_per_order(order_stub, 3)

    assert [r["index"] for r in results] == list(range(8))
    assert [r["order_id"] for r in results] == [1, 2, None, 50, 1, 3, None, 4]
    assert [r["status"] for r in results] == [201, 400, 400, 400, 400, 402, 400, 400]
    slugs = [r["problem"]["type"].removeprefix(PROBLEMS) for r in results if "problem" in r]
    assert slugs == [
        "invalid-payment",
        "invalid-request",
        "duplicate-order",
        "duplicate-order",
        "payment-declined",
        "invalid-request",
        "invalid-request",
    ]
    for result in results:
        assert ("payment" in result) == (result["status"] in (201, 402)), result
        if "problem" in result:
            assert result["problem"]["status"] == result["status"]
    assert results[0]["payment"] == stored[1]
    assert results[0]["payment"]["status"] == "COMPLETED"
    assert results[5]["payment"] == stored[3]
    assert results[5]["payment"]["status"] == "FAILED"
    assert results[5]["problem"]["payment_id"] == stored[3]["id"]
    assert results[3]["problem"]["order_id"] == 50
    assert stored[2] is None and stored[4] is None
    assert stored[1]["amount"] == 5000  # the first of the two entries for order 1
    # One webhook per 201 and 402 item (and the one of the earlier single create).
    assert webhooks == Counter({1: 1, 3: 1, 50: 1})
    bodies = {call.order_id: call.body for call in order_stub.accepted}
    assert bodies[1] == {
        "payment_status": "completed",
        "transaction_id": stored[1]["transaction_id"],
    }  # type: ignore[index]
    assert bodies[3] == {"payment_status": "failed", "transaction_id": stored[3]["transaction_id"]}  # type: ignore[index]


INVALID_ENTRIES = [
    '{"order_id": 1, "amount": 99}',
    '{"order_id": 1, "amount": 1000001}',
    '{"order_id": 1, "amount": 100.5}',
    '{"order_id": 1, "amount": 1e400}',
    '{"order_id": 1, "amount": "100"}',
    '{"order_id": 1, "amount": true}',
    '{"order_id": 1, "amount": null}',
    '{"order_id": 1}',
    '{"amount": 5000}',
    '{"order_id": 0, "amount": 5000}',
    '{"order_id": 9223372036854775808, "amount": 5000}',
    '{"order_id": 1.5, "amount": 5000}',
    '{"order_id": 1, "amount": 5000, "currency": "USD"}',
    '{"order_id": 1, "amount": 5000, "extra": 1}',
    "[]",
    '"text"',
    "null",
    "5",
]


async def test_each_invalid_entry_gets_the_problem_the_single_call_answers(
    service: RunningService,
) -> None:
    results = await results_of(service.client, envelope(*INVALID_ENTRIES))

    for raw, result in zip(INVALID_ENTRIES, results, strict=True):
        single = await service.client.post(SINGLE, content=raw, headers=JSON_HEADERS)
        assert_problem(single, 400)
        assert result["status"] == 400, raw
        assert result["problem"] == single.json(), raw
        assert "payment" not in result
    assert await payment_of_order(service.client, 1) is None


async def test_a_duplicate_order_gets_the_problem_the_single_call_answers(
    service: RunningService,
) -> None:
    first = await service.client.post(SINGLE, json={"order_id": 7, "amount": 1000})
    assert first.status_code == 201, first.text

    (result,) = await results_of(service.client, envelope(entry(7)))
    single = await service.client.post(SINGLE, content=entry(7), headers=JSON_HEADERS)

    assert result["problem"] == assert_problem(single, 400, "duplicate-order")
    assert await payment_of_order(service.client, 7) == first.json()


async def test_a_duplicate_within_the_batch_is_refused_and_the_first_proceeds(
    service: RunningService, order_stub: OrderServiceStub
) -> None:
    results = await results_of(service.client, envelope(entry(8, 1000), entry(8, 2000)))

    assert [r["status"] for r in results] == [201, 400]
    assert results[1]["problem"]["type"] == PROBLEMS + "duplicate-order"
    assert results[1]["problem"]["order_id"] == 8
    assert await payment_of_order(service.client, 8) == results[0]["payment"]
    assert await webhooks_per_order(order_stub, 1) == Counter({8: 1})


async def test_in_async_gateway_mode_items_are_201_processing_without_a_webhook(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    async with running(database_url, order_stub, gateway={"mode": "async"}) as svc:
        results = await results_of(svc.client, envelope(entry(1), entry(2)))
        stored = [await payment_of_order(svc.client, n) for n in (1, 2)]

    assert [r["status"] for r in results] == [201, 201]
    assert [r["payment"] for r in results] == stored
    assert {r["payment"]["status"] for r in results} == {"PROCESSING"}
    # The service (and its relay) has stopped: any webhook would have been sent by now.
    assert order_stub.accepted == []


# --- the envelope ----------------------------------------------------------------------------

ENVELOPES = {
    "not an object": "[" + entry(1) + "]",
    "not JSON": '{"payments": [',
    "no payments": "{}",
    "an extra key": '{"payments": [' + entry(1) + '], "note": "x"}',
    "payments not a list": '{"payments": ' + entry(1) + "}",
    "empty list": '{"payments": []}',
    "1,001 entries": envelope(*[entry(1)] * 1001),
    "a duplicate key": '{"payments": [' + entry(1) + '], "payments": []}',
    "a duplicate key in an entry": '{"payments": [{"order_id": 1, "order_id": 2, "amount": 500}]}',
}


@pytest.mark.parametrize("body", ENVELOPES.values(), ids=ENVELOPES.keys())
async def test_an_envelope_that_is_not_one_object_with_1_to_1000_payments_is_refused_whole(
    service: RunningService, body: str
) -> None:
    assert_problem(await post_batch(service.client, body), 400, "invalid-request")
    assert await payment_of_order(service.client, 1) is None


async def test_a_batch_of_1000_entries_is_answered_entry_by_entry(service: RunningService) -> None:
    results = await results_of(service.client, envelope(*[entry(n, 99) for n in range(1, 1001)]))

    assert [r["index"] for r in results] == list(range(1000))
    assert {r["problem"]["type"] for r in results} == {PROBLEMS + "invalid-payment"}


async def test_a_body_that_is_not_json_is_415(service: RunningService) -> None:
    response = await service.client.post(
        BATCH, content=envelope(entry(1)), headers={"content-type": "text/plain"}
    )
    assert_problem(response, 415)


# --- body limit ------------------------------------------------------------------------------


def padded(entries: str, size: int) -> bytes:
    body = entries.encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


async def test_a_batch_over_the_single_limit_is_taken_up_to_its_own_limit_then_413(
    service: RunningService,
) -> None:
    big = await post_batch(service.client, padded(envelope(entry(1)), SINGLE_LIMIT * 4))
    at_limit = await post_batch(service.client, padded(envelope(entry(2)), BATCH_LIMIT))
    over = await post_batch(service.client, padded(envelope(entry(3)), BATCH_LIMIT + 1))
    keyed_over = await post_batch(
        service.client,
        padded(envelope(entry(4)), BATCH_LIMIT + 1),
        headers={"Idempotency-Key": "too-big"},
    )
    single_over = await service.client.post(
        SINGLE, content=padded(entry(5), SINGLE_LIMIT + 1), headers=JSON_HEADERS
    )

    assert big.status_code == 200, big.text
    assert at_limit.status_code == 200, at_limit.text
    assert_problem(over, 413)
    assert_problem(keyed_over, 413)
    assert_problem(single_over, 413)  # the single create keeps its own limit
    assert [await payment_of_order(service.client, n) is not None for n in (1, 2, 3, 4, 5)] == [
        True,
        True,
        False,
        False,
        False,
    ]


async def test_the_configured_batch_limit_applies(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    async with running(database_url, order_stub, server={"max_batch_body_bytes": 2048}) as svc:
        at_limit = await post_batch(svc.client, padded(envelope(entry(1)), 2048))
        over = await post_batch(svc.client, padded(envelope(entry(2)), 2049))

    assert at_limit.status_code == 200, at_limit.text
    assert_problem(over, 413)


# --- Idempotency-Key -------------------------------------------------------------------------


async def test_the_whole_answer_is_replayed_for_the_same_key_and_body(
    service: RunningService, order_stub: OrderServiceStub
) -> None:
    # Over the single create's limit: the key's middleware reads with the batch's limit.
    body = padded(envelope(entry(1), entry(2, 99), entry(3)), SINGLE_LIMIT * 2)
    key = {"Idempotency-Key": "batch-1"}

    first = await post_batch(service.client, body, key)
    replay = await post_batch(service.client, body, key)
    other = await post_batch(service.client, envelope(entry(4)), key)

    assert first.status_code == 200, first.text
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.status_code == 200
    assert replay.content == first.content
    assert_problem(other, 422, "idempotency-key-reused")
    assert await payment_of_order(service.client, 4) is None
    assert await webhooks_per_order(order_stub, 2) == Counter({1: 1, 3: 1})


async def test_a_batch_needs_the_bearer_token_when_authentication_is_on(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    async with running(database_url, order_stub, auth={"tokens": ["token-a"]}) as svc:
        refused = await post_batch(svc.client, envelope(entry(1)))
        accepted = await post_batch(
            svc.client, envelope(entry(2)), headers={"Authorization": "Bearer token-a"}
        )

    assert_problem(refused, 401)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["results"][0]["status"] == 201


# --- concurrency and crashes -----------------------------------------------------------------


async def test_racing_batches_with_overlapping_orders_pay_each_order_once(
    service: RunningService, order_stub: OrderServiceStub
) -> None:
    # The overlap in opposite orders: a lock order that followed the request would deadlock.
    first = list(range(1, 301))
    second = list(range(300, 100, -1)) + list(range(301, 401))

    answers = await asyncio.gather(
        results_of(service.client, envelope(*map(entry, first))),
        results_of(service.client, envelope(*map(entry, second))),
    )

    paid: Counter[int] = Counter()
    for results in answers:
        for result in results:
            if result["status"] == 201:
                paid[result["order_id"]] += 1
            else:
                assert result["problem"]["type"] == PROBLEMS + "duplicate-order", result
                assert result["order_id"] in range(101, 301)
    assert paid == Counter(dict.fromkeys(range(1, 401), 1))
    assert await webhooks_per_order(order_stub, 400) == paid


class FailingGateway(GatewayAround):
    """The simulator, except that charging `amount` raises, as a gateway outage would."""

    def __init__(self, inner: Gateway, amount: int) -> None:
        super().__init__(inner)
        self._amount = Decimal(amount)

    async def charge(self, request: ChargeRequest) -> ChargeDecision:
        if request.amount == self._amount:
            raise ConnectionError("gateway unreachable")
        return await self._inner.charge(request)


async def test_items_the_gateway_failed_stay_processing_until_the_reconciler_settles_them(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    reconciler = {
        "charge_timeout_seconds": 0.25,
        "reconcile_after_seconds": 0.5,
        "reconcile_interval_seconds": 0.1,
    }
    async with running(database_url, order_stub, gateway=reconciler) as svc:
        # Create's gateway fails for 4040; the reconciler keeps asking the simulator.
        wrap_api_gateway(svc, lambda inner: FailingGateway(inner, 4040))
        results = await results_of(svc.client, envelope(entry(1), entry(2, 4040), entry(3, 4040)))
        left = [await payment_of_order(svc.client, n) for n in (2, 3)]

        async def settled() -> bool:
            stored = [await payment_of_order(svc.client, n) for n in (2, 3)]
            return all(p is not None and p["status"] == "COMPLETED" for p in stored)

        await wait_until(settled, what="the reconciler settling the failed items")
        webhooks = await webhooks_per_order(order_stub, 3)

    assert [r["status"] for r in results] == [201, 503, 503]
    for result, payment in zip(results[1:], left, strict=True):
        assert payment is not None
        assert payment["status"] == "PROCESSING"  # committed before the gateway was asked
        assert result["problem"]["type"] == PROBLEMS + "gateway-unavailable"
        assert result["problem"]["payment_id"] == payment["id"]
        assert "payment" not in result
    assert webhooks == Counter({1: 1, 2: 1, 3: 1})
