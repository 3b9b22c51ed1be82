"""Errors over real HTTP: RFC 9457 problem+json everywhere, a stable `type` per kind, no 500s."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.order_stub import OrderServiceStub
from tests.support.problems import assert_problem
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings

PAYMENTS = "/api/v1/payments/"
REFUND = "/api/v1/payments/refund"
JSON_HEADERS = {"content-type": "application/json"}
DECLINED_AMOUNT = 666


# --- helpers ---------------------------------------------------------------------------------


async def create(client: httpx.AsyncClient, order_id: int, amount: Any = 5000) -> httpx.Response:
    return await client.post(PAYMENTS, json={"order_id": order_id, "amount": amount})


async def create_ok(client: httpx.AsyncClient, order_id: int) -> dict[str, Any]:
    response = await create(client, order_id)
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


async def refund(client: httpx.AsyncClient, payment_id: int, **extra: Any) -> httpx.Response:
    return await client.post(REFUND, json={"payment_id": payment_id, "reason": "r", **extra})


# --- routing ---------------------------------------------------------------------------------


async def test_an_unknown_route_is_404_problem_json(
    service: RunningService, subtests: pytest.Subtests
) -> None:
    for method, path in [
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/api/v1/nothing"),
        ("POST", "/api/v2/payments/"),
        ("POST", "/api/v1/payments/refund/extra"),
        ("GET", "/api/v1/payments/1/refunds"),
        ("GET", "/api/v1/payments/order/"),
        ("GET", "/api/v1/payments/order/1/extra"),
    ]:
        with subtests.test(method=method, path=path):
            response = await service.client.request(method, path, json={})

            assert_problem(response, 404)


# --- one stable type per kind of error -------------------------------------------------------

Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


async def _duplicate(client: httpx.AsyncClient, order_id: int) -> httpx.Response:
    await create_ok(client, order_id)
    return await create(client, order_id)


async def _refunded_twice(client: httpx.AsyncClient, order_id: int) -> httpx.Response:
    payment = await create_ok(client, order_id)
    assert (await refund(client, payment["id"])).status_code == 201
    return await refund(client, payment["id"])


async def _wrong_refund_amount(
    client: httpx.AsyncClient, order_id: int, amount: int
) -> httpx.Response:
    payment = await create_ok(client, order_id)
    return await refund(client, payment["id"], amount=amount)


def _raw(body: bytes) -> Call:
    return lambda c: c.post(PAYMENTS, content=body, headers=JSON_HEADERS)


# Each kind of error, its status, and two different requests that cause it.
ERROR_KINDS: dict[str, tuple[int, Call, Call]] = {
    "invalid request body": (
        400,
        _raw(b'{"order_id": 1, "amount": "100"}'),
        _raw(b'{"order_id": 1,'),
    ),
    "amount out of range": (
        400,
        lambda c: create(c, 1, 99),
        lambda c: create(c, 1, 1_000_001),
    ),
    "duplicate order_id": (
        400,
        lambda c: _duplicate(c, 101),
        lambda c: _duplicate(c, 102),
    ),
    "declined": (
        402,
        lambda c: create(c, 103, DECLINED_AMOUNT),
        lambda c: create(c, 104, DECLINED_AMOUNT),
    ),
    "unknown payment": (
        404,
        lambda c: c.get("/api/v1/payments/999999"),
        lambda c: refund(c, 999999),
    ),
    "not refundable": (
        400,
        lambda c: _refunded_twice(c, 105),
        lambda c: _refunded_twice(c, 106),
    ),
    "refund amount differs": (
        400,
        lambda c: _wrong_refund_amount(c, 107, 1),
        lambda c: _wrong_refund_amount(c, 108, 99999),
    ),
    "unknown route": (
        404,
        lambda c: c.get("/nope"),
        lambda c: c.post("/api/v1/payments/refund/extra"),
    ),
    "wrong method": (
        405,
        lambda c: c.delete("/api/v1/payments/1"),
        lambda c: c.put("/api/v1/payments/"),
    ),
    "body too large": (
        413,
        _raw(b"{" + b" " * 20_000 + b"}"),
        _raw(b"[" + b"1," * 10_000 + b"1]"),
    ),
}


async def test_each_kind_of_error_has_one_stable_type_distinct_from_the_others(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    settings = make_settings(
        database_url, order_stub.url, gateway={"decline_amounts": [DECLINED_AMOUNT]}
    )
    types: dict[str, str] = {}
    async with serve(settings) as svc:
        for kind, (status, first, second) in ERROR_KINDS.items():
            one = assert_problem(await first(svc.client), status)
            other = assert_problem(await second(svc.client), status)
            assert one["type"] == other["type"], kind
            assert urlsplit(one["type"]).scheme, f"{kind}: type {one['type']!r} is not a URI"
            types[kind] = one["type"]
        # Stable: asking again gives the same type again.
        for kind in ("invalid request body", "amount out of range", "unknown payment"):
            status, first, _ = ERROR_KINDS[kind]
            assert assert_problem(await first(svc.client), status)["type"] == types[kind], kind

    assert len(set(types.values())) == len(types), types


# --- never a 500 -----------------------------------------------------------------------------

ZEROS = b"0" * 4400  # a number of 4,400 digits

# Each with its one right answer: 415 for a body that is not JSON, 400 for a body or a payment
# id the rules refuse, 404 for an id of no payment or a path of no route (CONTRACT.md).
ODD_REQUESTS: list[tuple[str, str, bytes, dict[str, str], int]] = [
    ("POST", PAYMENTS, b'{"order_id": 1, "amount": 1000}', {"content-type": "text/plain"}, 415),
    (
        "POST",
        PAYMENTS,
        b'{"order_id": 1, "amount": 1000}',
        {"content-type": "application/xml"},
        415,
    ),
    ("POST", PAYMENTS, b"[" * 5000 + b"]" * 5000, JSON_HEADERS, 400),
    ("POST", PAYMENTS, b'{"a": ' * 2000 + b"1" + b"}" * 2000, JSON_HEADERS, 400),
    (
        "POST",
        PAYMENTS,
        b'{"order_id": 1, "amount": 1000, "currency": "\\ud800"}',
        JSON_HEADERS,
        400,
    ),
    (
        "POST",
        PAYMENTS,
        b'{"order_id": 1, "amount": 1000, "currency": "JP\x00Y"}',
        JSON_HEADERS,
        400,
    ),
    ("POST", PAYMENTS, b'{"order_id": 1, "amount": 1e999999}', JSON_HEADERS, 400),
    ("POST", PAYMENTS, b'{"order_id": 1, "amount": 1' + ZEROS + b"}", JSON_HEADERS, 400),
    ("POST", PAYMENTS, b'{"order_id": 1' + ZEROS + b', "amount": 1000}', JSON_HEADERS, 400),
    ("POST", REFUND, b'{"payment_id": 1, "reason": "\\ud800"}', JSON_HEADERS, 400),
    ("POST", REFUND, b'{"payment_id": 1, "reason": "\\u0000"}', JSON_HEADERS, 400),
    ("POST", REFUND, b'{"payment_id": 1, "reason": "r", "amount": 1' + ZEROS + b"}", {}, 400),
    ("POST", REFUND, b'{"payment_id": 1, "reason": "r", "amount": -1e308}', JSON_HEADERS, 400),
    ("POST", REFUND, b'{"payment_id": 1, "reason": "r"}', {"content-type": "text/plain"}, 415),
    ("GET", "/api/v1/payments/%00", b"", {}, 400),
    ("GET", "/api/v1/payments/%E2%91%A0", b"", {}, 400),
    ("GET", "/api/v1/payments/%D9%A3", b"", {}, 400),
    ("GET", "/api/v1/payments/" + "9" * 5000, b"", {}, 404),
    ("GET", "/api/v1/payments/order/" + "9" * 5000, b"", {}, 404),
    ("GET", "/api/v1/payments/order/%D9%A3", b"", {}, 404),
]


async def test_odd_requests_get_their_4xx_problem_never_a_500(
    service: RunningService, subtests: pytest.Subtests
) -> None:
    await create_ok(service.client, order_id=1)  # payment 1 exists, so refunds reach the rules

    for method, path, body, headers, status in ODD_REQUESTS:
        with subtests.test(method=method, path=path, body=body, headers=headers, status=status):
            response = await service.client.request(method, path, content=body, headers=headers)

            assert_problem(response, status)
            assert (await service.client.get("/api/v1/payments/1")).json()["status"] == "COMPLETED"
