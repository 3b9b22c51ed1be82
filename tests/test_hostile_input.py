"""Hostile input over real HTTP: each gets a clear 4xx problem+json, never a 5xx, nothing is
stored, and the service stays healthy.

Complements tests/test_api_errors.py (which has unknown routes, 5,000-deep arrays, escaped
surrogates, 4,400-digit numbers and odd path ids) with the size-limit boundary, chunked
bodies, ~8,000-deep nesting (also in unknown fields and in a signed gateway callback), raw
invalid UTF-8, form and multipart bodies, NUL bytes, duplicated keys, a BOM, every method a
route does not allow (with its Allow header) and more path ids.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.callbacks import signed_headers
from tests.support.postgres import TestPostgres
from tests.support.problems import PROBLEMS, assert_problem
from tests.support.service import Shared, shared_service
from tests.support.sql import load_test_queries

PAYMENTS = "/api/v1/payments/"
REFUND = "/api/v1/payments/refund"
WEBHOOK = "/api/v1/payments/webhook"
JSON = {"content-type": "application/json"}
LIMIT = 16384  # [server] max_body_bytes
DEPTH = 8000  # 16,000 bytes of brackets: as deep as fits in the size limit

checks: Any = load_test_queries()
_order_ids = itertools.count(100_000)


# --- helpers ---------------------------------------------------------------------------------


async def assert_healthy(client: httpx.AsyncClient) -> None:
    """Ready, and still taking payments."""
    assert (await client.get("/health/ready")).status_code == 200
    created = await client.post(PAYMENTS, json={"order_id": next(_order_ids), "amount": 1000})
    assert created.status_code == 201, created.text


def padded(body: bytes, size: int) -> bytes:
    """`body` (a JSON object) with blanks before its closing brace, `size` bytes in all."""
    assert body.endswith(b"}") and len(body) <= size
    return body[:-1] + b" " * (size - len(body)) + b"}"


async def chunked(body: bytes, chunk: int = 1000) -> AsyncIterator[bytes]:
    """An async body: httpx sends it with Transfer-Encoding: chunked, no Content-Length."""
    for start in range(0, len(body), chunk):
        yield body[start : start + chunk]


async def stored(db: asyncpg.Connection) -> tuple[int, int]:
    """How many payments and refunds exist."""
    payments = int(await checks.count_payments(db))
    return payments, int(await checks.count_refunds(db))


async def pay(client: httpx.AsyncClient) -> dict[str, Any]:
    """A new COMPLETED payment."""
    response = await client.post(PAYMENTS, json={"order_id": next(_order_ids), "amount": 1000})
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


@pytest.fixture(scope="module")
async def shared(postgres: TestPostgres, template_database: str) -> AsyncIterator[Shared]:
    """One service for the cases that only need a refusal: a fresh database per module.
    Payment 1 (order 1, 1,000 JPY) is COMPLETED, so refund bodies naming it reach the rules."""
    async with shared_service(postgres, template_database) as running:
        yield running


# --- body size: the exact limit, chunked bodies ----------------------------------------------


def _sent(body: bytes, transfer: str) -> Any:
    return chunked(body) if transfer == "chunked" else body


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
@pytest.mark.parametrize("idempotency_key", [False, True], ids=["no-key", "with-key"])
async def test_a_create_body_of_exactly_the_limit_is_taken_and_one_byte_more_is_413(
    shared: Shared, transfer: str, idempotency_key: bool
) -> None:
    order_id = next(_order_ids)
    body = b'{"order_id": %d, "amount": 1000}' % order_id
    headers = {**JSON, **({"Idempotency-Key": f"size-{order_id}"} if idempotency_key else {})}
    before = await stored(shared.db)

    too_large = await shared.client.post(
        PAYMENTS, content=_sent(padded(body, LIMIT + 1), transfer), headers=headers
    )
    assert_problem(too_large, 413)
    assert too_large.json()["type"] == PROBLEMS + "body-too-large"
    assert await stored(shared.db) == before

    # Not a reused key either: the 413 claimed nothing.
    accepted = await shared.client.post(
        PAYMENTS, content=_sent(padded(body, LIMIT), transfer), headers=headers
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["order_id"] == order_id
    await assert_healthy(shared.client)


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
async def test_a_refund_body_of_exactly_the_limit_is_taken_and_one_byte_more_is_413(
    shared: Shared, transfer: str
) -> None:
    payment = await pay(shared.client)
    body = json.dumps({"payment_id": payment["id"], "reason": "r"}).encode()
    before = await stored(shared.db)

    too_large = await shared.client.post(
        REFUND, content=_sent(padded(body, LIMIT + 1), transfer), headers=JSON
    )
    assert_problem(too_large, 413)
    assert await stored(shared.db) == before

    accepted = await shared.client.post(
        REFUND, content=_sent(padded(body, LIMIT), transfer), headers=JSON
    )
    assert accepted.status_code == 201, accepted.text
    await assert_healthy(shared.client)


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
async def test_a_signed_gateway_callback_over_the_limit_is_413(
    shared: Shared, transfer: str
) -> None:
    payment = await pay(shared.client)
    callback = (
        b'{"transaction_id": "%s", "status": "completed"}' % payment["transaction_id"].encode()
    )
    body = padded(callback, LIMIT + 1)

    response = await shared.client.post(
        WEBHOOK, content=_sent(body, transfer), headers=signed_headers(body)
    )

    assert_problem(response, 413)
    await assert_healthy(shared.client)


async def test_a_megabyte_chunked_body_is_413(shared: Shared) -> None:
    body = b'{"order_id": 4, "amount": 1000, "x": "' + b"a" * 1_000_000 + b'"}'
    before = await stored(shared.db)

    response = await shared.client.post(PAYMENTS, content=chunked(body, 65536), headers=JSON)

    assert_problem(response, 413)
    assert await stored(shared.db) == before
    await assert_healthy(shared.client)


# --- deep JSON -------------------------------------------------------------------------------

DEEP_ARRAYS = b"[" * DEPTH + b"]" * DEPTH
DEEP_OBJECTS = b'{"a":' * 2700 + b"1" + b"}" * 2700


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (PAYMENTS, DEEP_ARRAYS),
        (REFUND, DEEP_ARRAYS),
        (PAYMENTS, b'{"order_id": 5, "amount": 1000, "x": ' + DEEP_ARRAYS + b"}"),
        (PAYMENTS, b'{"order_id": 5, "amount": 1000, "x": ' + DEEP_OBJECTS + b"}"),
        (PAYMENTS, b'{"order_id": 5, "amount": ' + DEEP_ARRAYS + b"}"),
        (REFUND, b'{"payment_id": 1, "reason": "r", "x": ' + DEEP_ARRAYS + b"}"),
        (REFUND, b'{"payment_id": 1, "reason": ' + DEEP_ARRAYS + b"}"),
    ],
    ids=[
        "create-arrays",
        "refund-arrays",
        "create-unknown-field-arrays",
        "create-unknown-field-objects",
        "create-amount-arrays",
        "refund-unknown-field-arrays",
        "refund-reason-arrays",
    ],
)
async def test_deep_json_is_400(shared: Shared, path: str, body: bytes) -> None:
    assert len(body) <= LIMIT
    before = await stored(shared.db)

    response = await shared.client.post(path, content=body, headers=JSON)

    assert_problem(response, 400)
    assert await stored(shared.db) == before
    await assert_healthy(shared.client)


@pytest.fixture(scope="module")
async def async_gateway(postgres: TestPostgres, template_database: str) -> AsyncIterator[Shared]:
    """A service whose gateway leaves payments PROCESSING until a signed callback comes."""
    async with shared_service(
        postgres, template_database, first_payment=False, gateway={"mode": "async"}
    ) as running:
        yield running


async def processing_payment(client: httpx.AsyncClient) -> dict[str, Any]:
    payment = await pay(client)
    assert payment["status"] == "PROCESSING"
    return payment


@pytest.mark.parametrize(
    "shape",
    ["top-level-arrays", "unknown-field-arrays", "unknown-field-objects", "status-arrays"],
)
async def test_deep_json_in_a_correctly_signed_gateway_callback_is_400(
    async_gateway: Shared, shape: str
) -> None:
    client = async_gateway.client
    payment = await processing_payment(client)
    head = b'{"transaction_id": "%s", ' % payment["transaction_id"].encode()
    body = {
        "top-level-arrays": DEEP_ARRAYS,
        "unknown-field-arrays": head + b'"status": "completed", "x": ' + DEEP_ARRAYS + b"}",
        "unknown-field-objects": head + b'"status": "completed", "x": ' + DEEP_OBJECTS + b"}",
        "status-arrays": head + b'"status": ' + DEEP_ARRAYS + b"}",
    }[shape]
    assert len(body) <= LIMIT

    response = await client.post(WEBHOOK, content=body, headers=signed_headers(body))

    assert_problem(response, 400)
    status = await checks.payment_status(async_gateway.db, payment_id=payment["id"])
    assert status == "PROCESSING"
    await assert_healthy(client)


# --- invalid UTF-8 ---------------------------------------------------------------------------

INVALID_UTF8 = {
    "lone continuation byte": b"\x80",
    "0xff": b"\xff",
    "truncated sequence": b"\xe2\x82",
    "overlong slash": b"\xc0\xaf",
    "encoded surrogate": b"\xed\xa0\x80",
    "beyond U+10FFFF": b"\xf4\x90\x80\x80",
}


@pytest.mark.parametrize("bad", INVALID_UTF8.values(), ids=INVALID_UTF8.keys())
async def test_invalid_utf8_in_a_body_is_400(shared: Shared, bad: bytes) -> None:
    payment = await pay(shared.client)
    bodies = [
        (PAYMENTS, b'{"order_id": 7, "amount": 1000, "currency": "JP' + bad + b'"}'),
        (PAYMENTS, b'{"order_id": 7, "amount": 1000, "' + bad + b'": 1}'),
        (REFUND, b'{"payment_id": %d, "reason": "r' % payment["id"] + bad + b'"}'),
    ]
    before = await stored(shared.db)

    for path, body in bodies:
        assert_problem(await shared.client.post(path, content=body, headers=JSON), 400)
    transaction = payment["transaction_id"].encode()
    callback = b'{"transaction_id": "%s", "status": "completed' % transaction + bad + b'"}'
    assert_problem(
        await shared.client.post(WEBHOOK, content=callback, headers=signed_headers(callback)), 400
    )

    assert await stored(shared.db) == before
    await assert_healthy(shared.client)


@pytest.mark.parametrize("bad", INVALID_UTF8.values(), ids=INVALID_UTF8.keys())
async def test_invalid_utf8_in_x_request_id_never_breaks_a_request(
    shared: Shared, bad: bytes
) -> None:
    headers = {**JSON, "X-Request-ID": b"req-" + bad}
    order_id = next(_order_ids)

    refused = await shared.client.post(PAYMENTS, content=b'{"order_id": 8', headers=headers)
    created = await shared.client.post(
        PAYMENTS, content=b'{"order_id": %d, "amount": 1000}' % order_id, headers=headers
    )

    assert_problem(refused, 400)
    assert created.status_code == 201, created.text
    for response in (refused, created):  # not echoed raw: replaced by a generated id
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    await assert_healthy(shared.client)


@pytest.mark.parametrize("bad", INVALID_UTF8.values(), ids=INVALID_UTF8.keys())
async def test_invalid_utf8_in_idempotency_key_is_400_and_runs_nothing(
    shared: Shared, bad: bytes
) -> None:
    payment = await pay(shared.client)
    headers = {**JSON, "Idempotency-Key": b"key-" + bad}
    before = await stored(shared.db)

    created = await shared.client.post(
        PAYMENTS, content=b'{"order_id": %d, "amount": 1000}' % next(_order_ids), headers=headers
    )
    refunded = await shared.client.post(
        REFUND, content=b'{"payment_id": %d, "reason": "r"}' % payment["id"], headers=headers
    )

    assert_problem(created, 400)
    assert_problem(refunded, 400)
    assert await stored(shared.db) == before
    await assert_healthy(shared.client)


# --- wrong content types ---------------------------------------------------------------------

NOT_JSON: dict[str, dict[str, Any]] = {
    "form": {"data": {"order_id": "10", "amount": "1000", "payment_id": "1", "reason": "r"}},
    "multipart": {
        "files": {"body": ("body.json", b'{"order_id": 10, "amount": 1000}', "application/json")}
    },
    "form type, json body": {"content-type": "application/x-www-form-urlencoded"},
    "multipart type, json body": {"content-type": "multipart/form-data; boundary=x"},
    "octet-stream": {"content-type": "application/octet-stream"},
    "text/json": {"content-type": "text/json"},
    "application/jsonp": {"content-type": "application/jsonp"},
}


@pytest.mark.parametrize("path", [PAYMENTS, REFUND], ids=["create", "refund"])
@pytest.mark.parametrize("kind", NOT_JSON.keys())
async def test_a_body_that_is_not_json_is_415(shared: Shared, path: str, kind: str) -> None:
    payment = await pay(shared.client)
    request = NOT_JSON[kind]
    if "content-type" in request:  # a valid JSON body, announced as something else
        body = {"order_id": next(_order_ids), "amount": 1000}
        if path == REFUND:
            body = {"payment_id": payment["id"], "reason": "r"}
        request = {"content": json.dumps(body).encode(), "headers": request}
    before = await stored(shared.db)

    response = await shared.client.post(path, **request)

    problem = assert_problem(response, 415)
    assert problem["type"] == PROBLEMS + "unsupported-media-type"
    assert await stored(shared.db) == before
    await assert_healthy(shared.client)


# --- NUL bytes, huge numbers, duplicated keys, BOM -------------------------------------------

ODD_BODIES: dict[str, tuple[str, bytes]] = {
    "escaped NUL in currency": (
        PAYMENTS,
        b'{"order_id": 11, "amount": 1000, "currency": "JPY\\u0000"}',
    ),
    "escaped NUL in a key": (PAYMENTS, b'{"order_id\\u0000": 11, "amount": 1000}'),
    "raw NUL between tokens": (PAYMENTS, b'{"order_id": 11,\x00 "amount": 1000}'),
    "raw NUL after the body": (PAYMENTS, b'{"order_id": 11, "amount": 1000}\x00'),
    "NUL inside a reason": (REFUND, b'{"payment_id": 1, "reason": "ok\\u0000; DROP TABLE"}'),
    "order_id 2^63": (PAYMENTS, b'{"order_id": 9223372036854775808, "amount": 1000}'),
    "order_id 2^64": (PAYMENTS, b'{"order_id": 18446744073709551616, "amount": 1000}'),
    "order_id -2^63-1": (PAYMENTS, b'{"order_id": -9223372036854775809, "amount": 1000}'),
    "order_id 0": (PAYMENTS, b'{"order_id": 0, "amount": 1000}'),
    "order_id as float": (PAYMENTS, b'{"order_id": 11.0, "amount": 1000}'),
    "order_id in exponent form": (PAYMENTS, b'{"order_id": 1e1, "amount": 1000}'),
    "amount 1e308": (PAYMENTS, b'{"order_id": 11, "amount": 1e308}'),
    "amount -1e308": (PAYMENTS, b'{"order_id": 11, "amount": -1e308}'),
    "amount 1e-400": (PAYMENTS, b'{"order_id": 11, "amount": 1e-400}'),
    "amount a hair over 100": (PAYMENTS, b'{"order_id": 11, "amount": 100.00000000000000000001}'),
    "amount a hair under 100": (PAYMENTS, b'{"order_id": 11, "amount": 99.999999999999999999999}'),
    "amount a hair over the max": (
        PAYMENTS,
        b'{"order_id": 11, "amount": 1000000.0000000000000000001}',
    ),
    "amount NaN": (PAYMENTS, b'{"order_id": 11, "amount": NaN}'),
    "amount Infinity": (PAYMENTS, b'{"order_id": 11, "amount": Infinity}'),
    "amount hex": (PAYMENTS, b'{"order_id": 11, "amount": 0x3e8}'),
    "payment_id 2^63": (REFUND, b'{"payment_id": 9223372036854775808, "reason": "r"}'),
    "refund amount 1e308": (REFUND, b'{"payment_id": 1, "reason": "r", "amount": 1e308}'),
    "refund amount a hair over": (
        REFUND,
        b'{"payment_id": 1, "reason": "r", "amount": 1000.0000000000000000001}',
    ),
    "BOM": (PAYMENTS, b'\xef\xbb\xbf{"order_id": 11, "amount": 1000}'),
    "BOM on a refund": (REFUND, b'\xef\xbb\xbf{"payment_id": 1, "reason": "r"}'),
    "UTF-16 with BOM": (PAYMENTS, '{"order_id": 11, "amount": 1000}'.encode("utf-16")),
    "two JSON documents": (PAYMENTS, b'{"order_id": 11, "amount": 1000}{"order_id": 12}'),
}


@pytest.mark.parametrize("kind", ODD_BODIES.keys())
async def test_nul_bytes_huge_numbers_and_boms_are_400(shared: Shared, kind: str) -> None:
    path, body = ODD_BODIES[kind]  # refunds name payment 1, COMPLETED
    before = await stored(shared.db)

    response = await shared.client.post(path, content=body, headers=JSON)

    assert_problem(response, 400)
    assert await stored(shared.db) == before
    await assert_healthy(shared.client)


DUPLICATED_KEYS: dict[str, tuple[str, bytes]] = {
    "order_id twice": (PAYMENTS, b'{"order_id": 13, "order_id": 14, "amount": 1000}'),
    "amount twice": (PAYMENTS, b'{"order_id": 15, "amount": 100, "amount": 1000000}'),
    "amount twice as floats": (PAYMENTS, b'{"order_id": 16, "amount": 100.0, "amount": 1e6}'),
    "payment_id twice": (REFUND, b'{"payment_id": 999, "payment_id": %d, "reason": "r"}'),
    "reason twice": (REFUND, b'{"payment_id": %d, "reason": "a", "reason": "b"}'),
}


@pytest.mark.parametrize("kind", DUPLICATED_KEYS.keys())
async def test_a_body_with_a_duplicated_key_is_400_and_runs_nothing(
    shared: Shared, kind: str
) -> None:
    # Which of two values counts is parser-dependent (RFC 8259 section 4): a payment must
    # not be taken, or refunded, on an ambiguous body.
    path, body = DUPLICATED_KEYS[kind]
    if path == REFUND:
        body = body % (await pay(shared.client))["id"]
    before = await stored(shared.db)

    response = await shared.client.post(path, content=body, headers=JSON)

    assert_problem(response, 400)
    assert await stored(shared.db) == before
    await assert_healthy(shared.client)


async def test_a_gateway_callback_with_a_duplicated_status_is_400_and_settles_nothing(
    async_gateway: Shared,
) -> None:
    client = async_gateway.client
    payment = await processing_payment(client)
    body = (
        b'{"transaction_id": "%s", "status": "failed", "status": "completed"}'
        % payment["transaction_id"].encode()
    )

    response = await client.post(WEBHOOK, content=body, headers=signed_headers(body))

    assert_problem(response, 400)
    status = await checks.payment_status(async_gateway.db, payment_id=payment["id"])
    assert status == "PROCESSING"
    await assert_healthy(client)


# --- methods and path ids --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", PAYMENTS),
        ("PATCH", "/api/v1/payments"),
        ("PUT", PAYMENTS),
        ("DELETE", "/api/v1/payments/1"),
        ("PUT", "/api/v1/payments/1"),
        ("PATCH", "/api/v1/payments/1"),
        ("POST", "/api/v1/payments/1"),
        ("DELETE", "/api/v1/payments/order/1"),
        ("PUT", REFUND),
        ("DELETE", REFUND),
        ("GET", WEBHOOK),
        ("TRACE", PAYMENTS),
        ("CONNECT", PAYMENTS),
        ("PROPFIND", "/api/v1/payments/1"),
        ("FOO", REFUND),
        ("PATCH", REFUND),
        ("POST", "/api/v1/payments/order/1"),
        ("PUT", WEBHOOK),
        ("DELETE", "/health/ready"),
        ("POST", "/health/live"),
        ("POST", "/metrics"),
        ("POST", "/schema/openapi.json"),
    ],
)
async def test_a_method_not_allowed_is_405_problem_json_with_allow(
    shared: Shared, method: str, path: str
) -> None:
    response = await shared.client.request(method, path, content=b"{}", headers=JSON)

    assert_problem(response, 405)
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed and method not in allowed, allowed
    assert (await shared.client.get("/api/v1/payments/1")).json()["status"] == "COMPLETED"
    await assert_healthy(shared.client)


async def test_head_on_a_post_only_route_is_405_with_allow(shared: Shared) -> None:
    response = await shared.client.head(PAYMENTS)

    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


# CONTRACT.md: a payment id that is not an integer is 400; an integer of any size that names no
# payment is 404 (also a numeral longer than a bigint, leading zeros included); the by-order
# endpoint answers only 404; a path that is no route is 404.
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/payments/0", 404),
        ("/api/v1/payments/-1", 404),
        ("/api/v1/payments/-9223372036854775808", 404),
        ("/api/v1/payments/-9223372036854775809", 404),
        ("/api/v1/payments/9223372036854775808", 404),
        ("/api/v1/payments/9999999999999999999", 404),
        ("/api/v1/payments/00000000000000000000000000000000000000001", 404),
        ("/api/v1/payments/1e3", 400),
        ("/api/v1/payments/0x10", 400),
        ("/api/v1/payments/%201", 400),
        ("/api/v1/payments/1%20", 400),
        ("/api/v1/payments/+1", 400),
        ("/api/v1/payments/1.0", 400),
        ("/api/v1/payments/%ff%fe", 400),
        ("/api/v1/payments/%c0%af", 400),
        ("/api/v1/payments/%2e%2e", 400),
        ("/api/v1/payments/..%2f..%2fetc%2fpasswd", 404),
        ("/api/v1/payments/1%3B%20DROP%20TABLE%20payments", 400),
        ("/api/v1/payments/1'%20OR%20'1'%3D'1", 400),
        ("/api/v1/payments/%0d%0aX-Injected:%201", 400),
        ("/api/v1/payments/" + "%41" * 3000, 400),
        ("/api/v1/payments/order/0", 404),
        ("/api/v1/payments/order/-1", 404),
        ("/api/v1/payments/order/9223372036854775808", 404),
        ("/api/v1/payments/order/-9223372036854775809", 404),
        ("/api/v1/payments/order/99999999999999999999", 404),
        ("/api/v1/payments/order/1.0", 404),
        ("/api/v1/payments/order/%ff", 404),
        ("/api/v1/payments/order/1e3", 404),
        ("/api/v1/payments/order/%0d%0aX-Injected:%201", 404),
    ],
)
async def test_an_absurd_path_id_is_400_if_not_an_integer_else_404(
    shared: Shared, path: str, status: int
) -> None:
    response = await shared.client.get(path)

    problem = assert_problem(response, status)
    assert "x-injected" not in response.headers
    assert len(problem["detail"]) < 200  # the id is not echoed without bound
    await assert_healthy(shared.client)
