"""GET /api/v1/payments: filters, newest first, keyset pages that hold under concurrent creates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.listing import LIST, listed
from tests.support.order_stub import OrderServiceStub
from tests.support.problems import assert_problem
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()

DECLINED = 4040


@pytest.fixture
async def svc(database_url: str, order_stub: OrderServiceStub) -> AsyncIterator[RunningService]:
    settings = make_settings(database_url, order_stub.url, gateway={"decline_amounts": [DECLINED]})
    async with serve(settings) as running:
        yield running


async def pay(client: httpx.AsyncClient, order_id: int, amount: int = 1000) -> dict[str, Any]:
    response = await client.post("/api/v1/payments/", json={"order_id": order_id, "amount": amount})
    assert response.status_code in (201, 402), response.text
    return dict(response.json())


async def pay_all(client: httpx.AsyncClient, order_ids: list[int]) -> list[int]:
    """Payments for these orders in one batch call (a hundred single calls took seconds
    of a test about paging); their ids, which rise with the order ids."""
    body = {"payments": [{"order_id": order_id, "amount": 1000} for order_id in order_ids]}
    response = await client.post("/api/v1/payments/batch", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201] * len(order_ids), results
    return [int(r["payment"]["id"]) for r in results]


async def page(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get(LIST, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def all_pages(client: httpx.AsyncClient, **params: Any) -> list[int]:
    ids: list[int] = []
    while True:
        body = await page(client, **params, **({"starting_after": ids[-1]} if ids else {}))
        ids += [payment["id"] for payment in body["data"]]
        if not body["has_more"]:
            return ids


async def test_newest_first_with_refunds_and_a_default_page_of_twenty(svc: RunningService) -> None:
    ids = [(await pay(svc.client, order_id))["id"] for order_id in range(1, 26)]
    refunded = await svc.client.post(
        "/api/v1/payments/refund", json={"payment_id": ids[-1], "reason": "cancelled"}
    )
    assert refunded.status_code == 201
    await listed(svc.client, 25)

    first = await page(svc.client)
    assert [p["id"] for p in first["data"]] == ids[::-1][:20]
    assert first["has_more"] is True
    newest = first["data"][0]
    assert newest["status"] == "REFUNDED" and [r["reason"] for r in newest["refunds"]] == [
        "cancelled"
    ]
    assert newest["amount"] == 1000.0 and newest["order_id"] == 25
    rest = await page(svc.client, starting_after=first["data"][-1]["id"])
    assert [p["id"] for p in rest["data"]] == ids[::-1][20:]
    assert rest["has_more"] is False


async def test_an_empty_list(svc: RunningService) -> None:
    assert await page(svc.client) == {"data": [], "has_more": False}


async def test_filters_by_status_and_creation_time_combine(svc: RunningService) -> None:
    completed = [await pay(svc.client, order_id) for order_id in (1, 2, 3)]
    declined = await pay(svc.client, 4, DECLINED)
    await asyncio.sleep(0.01)  # distinct creation times on either side of the bound
    later = await pay(svc.client, 5)
    await listed(svc.client, 5)

    failed = await page(svc.client, status="FAILED")
    assert [p["id"] for p in failed["data"]] == [declined["payment_id"]]
    before = await page(svc.client, created_lt=later["created_at"])
    assert len(before["data"]) == 4 and later["id"] not in [p["id"] for p in before["data"]]
    since = await page(svc.client, created_gte=later["created_at"], status="COMPLETED")
    assert [p["id"] for p in since["data"]] == [later["id"]]
    window = await page(
        svc.client,
        status="COMPLETED",
        created_gte=completed[0]["created_at"],
        created_lt=later["created_at"],
    )
    assert [p["id"] for p in window["data"]] == [p["id"] for p in completed[::-1]]


async def test_paging_while_payments_are_created_neither_repeats_nor_skips(
    svc: RunningService,
) -> None:
    existing = await pay_all(svc.client, list(range(1, 61)))
    await listed(svc.client, 60, limit=100)

    paged = asyncio.Event()

    async def keep_creating() -> None:
        """Creates one after another until the paging is done (not a fixed hundred, most
        of which came after it)."""
        order_id = 1000
        while not paged.is_set():
            await pay(svc.client, order_id)
            order_id += 1

    creating = asyncio.create_task(keep_creating())
    seen: list[int] = []
    body = await page(svc.client, limit=7)
    seen += [p["id"] for p in body["data"]]
    while body["has_more"]:
        body = await page(svc.client, limit=7, starting_after=seen[-1])
        seen += [p["id"] for p in body["data"]]
        await asyncio.sleep(0.005)
    paged.set()
    await creating

    assert len(seen) == len(set(seen)), "a payment came twice"
    assert seen == sorted(seen, reverse=True)
    assert set(existing) <= set(seen), "a payment that existed before paging was skipped"


@pytest.mark.parametrize(
    "params",
    [
        {"status": "PAID"},
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"starting_after": "abc"},
        {"starting_after": 0},
        {"starting_after": 2**63},
        {"created_gte": "yesterday"},
        {"created_lt": "2026-13-01T00:00:00Z"},
        {"created_lt": "0.5"},
        {"created_gte": "2026-11-30T00:00:00"},
    ],
)
async def test_a_bad_parameter_is_a_400_problem(
    svc: RunningService, params: dict[str, Any]
) -> None:
    assert_problem(await svc.client.get(LIST, params=params), 400, "invalid-request")


async def test_the_largest_page_is_a_hundred(svc: RunningService) -> None:
    ids = await pay_all(svc.client, list(range(1, 103)))
    assert ids == sorted(ids)
    await listed(svc.client, 102, limit=100)
    first = await page(svc.client, limit=100)
    assert len(first["data"]) == 100 and first["has_more"] is True
    assert await all_pages(svc.client, limit=100) == ids[::-1]


async def test_a_payment_that_commits_late_is_never_passed_over(
    svc: RunningService, db: asyncpg.Connection
) -> None:
    """Reproduced: ids are drawn at INSERT, not at commit. A payment whose transaction
    stays open while later ones commit and a client pages past its id showed on no page
    of that walk, though the walk went on after it committed."""
    await pay_all(svc.client, list(range(1, 16)))
    await listed(svc.client, 15)
    held = db.transaction()
    await held.start()
    late: int = await checks.insert_payment_row(
        db, order_id=100, amount=1000, currency="JPY", status="PROCESSING"
    )
    await pay_all(svc.client, list(range(200, 210)))  # created after it, committed before it

    walk: list[int] = []
    while not walk or walk[-1] > late:  # pages while it is uncommitted, until past its id
        body = await page(svc.client, limit=4, **({"starting_after": walk[-1]} if walk else {}))
        walk += [payment["id"] for payment in body["data"]]
    await held.commit()
    while body["has_more"]:
        body = await page(svc.client, limit=4, starting_after=walk[-1])
        walk += [payment["id"] for payment in body["data"]]

    everything = await all_pages(svc.client, limit=100)
    assert len(walk) == len(set(walk)), "a payment came twice"
    assert late in everything
    passed = everything[everything.index(walk[0]) : everything.index(walk[-1]) + 1]
    assert [p for p in passed if p not in walk] == [], "the walk skipped these payments"
    # It sorts before the walk's first page, as a payment created during the walk does.
    assert everything.index(late) < everything.index(walk[0])


async def test_a_starting_after_of_no_payment_is_a_404(svc: RunningService) -> None:
    """The page continues from the payment's place in the list, which only a payment has."""
    [paid] = await pay_all(svc.client, [1])
    response = await svc.client.get(LIST, params={"starting_after": paid + 1})
    assert_problem(response, 404, "payment-not-found")
    assert response.json()["detail"] == f"starting_after {paid + 1} is not the id of a payment"
