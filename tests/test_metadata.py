"""Payment metadata (CONTRACT.md, "Metadata"): given on create (single and batch items),
returned everywhere the payment is, passed on to the gateway, searchable in the list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.gateway import ChargeDecision, ChargeRequest, Gateway
from tests.support.gateways import GatewayAround, wrap_api_gateway
from tests.support.listing import LIST, listed
from tests.support.order_stub import OrderServiceStub
from tests.support.problems import assert_problem
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings

PAYMENTS = "/api/v1/payments/"
DECLINED = 4040
TAGS = {"customer": "c-4711", "campaign": "winter.2026", "note": ""}


class RecordingGateway(GatewayAround):
    """The simulator, keeping every charge request it was given."""

    def __init__(self, inner: Gateway) -> None:
        super().__init__(inner)
        self.charged: list[ChargeRequest] = []

    async def charge(self, request: ChargeRequest) -> ChargeDecision:
        self.charged.append(request)
        return await self._inner.charge(request)


@pytest.fixture
async def svc(database_url: str, order_stub: OrderServiceStub) -> AsyncIterator[RunningService]:
    settings = make_settings(database_url, order_stub.url, gateway={"decline_amounts": [DECLINED]})
    async with serve(settings) as running:
        yield running


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post(PAYMENTS, json=body)


async def test_metadata_goes_round_trip_on_a_single_create(svc: RunningService) -> None:
    gateway = wrap_api_gateway(svc, RecordingGateway)
    created = await create(svc.client, {"order_id": 1, "amount": 1000, "metadata": TAGS})

    assert created.status_code == 201, created.text
    assert created.json()["metadata"] == TAGS
    payment_id = created.json()["id"]
    by_id = (await svc.client.get(f"{PAYMENTS}{payment_id}")).json()
    by_order = (await svc.client.get(f"{PAYMENTS}order/1")).json()
    assert by_id["metadata"] == by_order["metadata"] == TAGS
    [request] = gateway.charged
    assert request.metadata == TAGS and request.payment_id == payment_id


async def test_without_metadata_a_payment_has_an_empty_object(svc: RunningService) -> None:
    created = await create(svc.client, {"order_id": 2, "amount": 1000})

    assert created.status_code == 201, created.text
    assert created.json()["metadata"] == {}
    assert (await svc.client.get(f"{PAYMENTS}order/2")).json()["metadata"] == {}


async def test_metadata_goes_round_trip_on_batch_items_and_through_a_retry(
    svc: RunningService,
) -> None:
    first, declined = {"customer": "a"}, {"customer": "b", "reason": "card"}
    batch = await svc.client.post(
        f"{PAYMENTS}batch",
        json={
            "payments": [
                {"order_id": 3, "amount": 1000, "metadata": first},
                {"order_id": 4, "amount": DECLINED, "metadata": declined},
                {"order_id": 5, "amount": 1000},
            ]
        },
    )

    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["status"] for r in results] == [201, 402, 201]
    assert [r["payment"]["metadata"] for r in results] == [first, declined, {}]
    payment_id = results[1]["payment"]["id"]
    # The gateway declines the amount whatever the attempt: the retry is declined again,
    # and the payment keeps its metadata through both charge attempts.
    retried = await svc.client.post(f"{PAYMENTS}{payment_id}/retry")
    assert retried.status_code == 402, retried.text
    stored = (await svc.client.get(f"{PAYMENTS}{payment_id}")).json()
    assert stored["metadata"] == declined
    assert len(stored["attempts"]) == 2


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({f"k{n}": "v" for n in range(21)}, "metadata"),
        ({"k" * 41: "v"}, "k" * 41),
        ({"long": "v" * 501}, "long"),
        ({"count": 3}, "count"),
        ({"bad key": "v"}, "bad key"),
        ({"ключ": "v"}, "ключ"),
        ({"": "v"}, "''"),
        (None, "metadata"),
        (["a", "b"], "metadata"),
        ("text", "metadata"),
    ],
    ids=[
        "21-keys",
        "41-character-key",
        "501-character-value",
        "non-string-value",
        "space-in-key",
        "non-ascii-key",
        "empty-key",
        "null",
        "array",
        "string",
    ],
)
async def test_metadata_outside_the_limits_is_a_400_naming_the_key(
    svc: RunningService, metadata: Any, named: str
) -> None:
    refused = await create(svc.client, {"order_id": 6, "amount": 1000, "metadata": metadata})

    body = assert_problem(refused, 400, "invalid-request")
    assert named in body["detail"], body["detail"]
    batch = await svc.client.post(
        f"{PAYMENTS}batch",
        json={"payments": [{"order_id": 7, "amount": 1000, "metadata": metadata}]},
    )
    [item] = batch.json()["results"]
    assert item["status"] == 400 and named in item["problem"]["detail"], item
    assert (await svc.client.get(f"{PAYMENTS}order/6")).status_code == 404


async def test_metadata_at_the_limits_is_taken(svc: RunningService) -> None:
    full = {f"key_{n:02d}.{'x' * 33}": "v" * 500 for n in range(20)}
    assert all(len(key) == 40 for key in full)

    created = await create(svc.client, {"order_id": 8, "amount": 1000, "metadata": full})

    assert created.status_code == 201, created.text
    assert created.json()["metadata"] == full


async def test_the_list_filters_by_one_key_and_by_two_with_paging(svc: RunningService) -> None:
    tagged: dict[int, dict[str, str]] = {}
    for order_id in range(10, 22):
        metadata = {"customer": "c-1" if order_id % 2 else "c-2"}
        if order_id % 3 == 0:
            metadata["campaign"] = "winter"
        tagged[order_id] = metadata
    bodies = [{"order_id": o, "amount": 1000, "metadata": m} for o, m in tagged.items()]
    batch = await svc.client.post(f"{PAYMENTS}batch", json={"payments": bodies})
    assert batch.status_code == 200, batch.text
    ids = {r["order_id"]: r["payment"]["id"] for r in batch.json()["results"]}

    one = await listed(svc.client, 6, **{"metadata[customer]": "c-1", "limit": 2})
    two = await listed(
        svc.client, 2, **{"metadata[customer]": "c-1", "metadata[campaign]": "winter", "limit": 1}
    )

    odd = [o for o in tagged if o % 2]
    assert [p["id"] for p in one] == sorted((ids[o] for o in odd), reverse=True)
    assert [p["order_id"] for p in two] == [21, 15]
    assert all(p["metadata"]["customer"] == "c-1" for p in one)
    none = await svc.client.get(LIST, params={"metadata[customer]": "C-1"})  # case-sensitive
    assert none.json()["data"] == []


async def test_the_list_filter_combines_with_the_others(svc: RunningService) -> None:
    for order_id, amount in ((30, 1000), (31, DECLINED)):
        body = {"order_id": order_id, "amount": amount, "metadata": {"shop": "s"}}
        assert (await create(svc.client, body)).status_code in (201, 402)

    failed = await listed(svc.client, 1, **{"metadata[shop]": "s", "status": "FAILED"})

    assert [p["order_id"] for p in failed] == [31]


@pytest.mark.parametrize(
    "params",
    [
        {"metadata[bad key]": "v"},
        {"metadata[]": "v"},
        {"metadata[" + "k" * 41 + "]": "v"},
        {"metadata": "v"},
        {"metadata[a][b]": "v"},
    ],
    ids=["space", "empty", "41-characters", "no-key", "nested"],
)
async def test_a_malformed_metadata_filter_is_a_400(
    svc: RunningService, params: dict[str, str]
) -> None:
    assert_problem(await svc.client.get(LIST, params=params), 400, "invalid-request")


async def test_a_metadata_filter_given_twice_is_a_400(svc: RunningService) -> None:
    answer = await svc.client.get(LIST, params=[("metadata[a]", "1"), ("metadata[a]", "2")])

    body = assert_problem(answer, 400, "invalid-request")
    assert "metadata[a]" in body["detail"]
