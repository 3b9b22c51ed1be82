"""Values the database cannot hold are the client's 400, never a 5xx, and never reach it.

Timestamps whose offset moves them out of the years 1 to 9999 in UTC, refund amounts no
numeric column can take (or no payment can have), paths too long for an idempotency key,
and NUL (U+0000), which PostgreSQL text cannot hold, wherever a request carries it: the
path, the query, any JSON body (create, batch entry, refund, retry, gateway callback) and
the headers the service reads. Each is a 400 problem+json naming the field, and nothing is
stored. Then a property test sends hostile values in every query parameter, path parameter
and body field of every endpoint: never a 5xx.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import string
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.callbacks import signed_headers
from tests.support.postgres import TestPostgres
from tests.support.problems import assert_problem
from tests.support.service import RunningService, Shared, shared_service
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()

PAYMENTS = "/api/v1/payments/"
LIST = "/api/v1/payments"
BATCH = "/api/v1/payments/batch"
REFUND = "/api/v1/payments/refund"
WEBHOOK = "/api/v1/payments/webhook"
EVENTS = "/api/v1/events"
JSON = {"content-type": "application/json"}
NUL = "NUL character (U+0000)"

_order_ids = itertools.count(100_000)


@pytest.fixture(scope="module")
async def shared(postgres: TestPostgres, template_database: str) -> AsyncIterator[Shared]:
    """One service for the module. Payment 1 (order 1, 1,000 JPY) is COMPLETED."""
    async with shared_service(postgres, template_database) as running:
        yield running


async def stored(db: asyncpg.Connection) -> tuple[int, int, int]:
    """How many payments, refunds and idempotency keys exist."""
    return (
        int(await checks.count_payments(db)),
        int(await checks.count_refunds(db)),
        int(await checks.count_idempotency_keys(db)),
    )


async def assert_refused(
    shared: Shared, request: Any, *names: str, slug: str = "invalid-request"
) -> dict[str, Any]:
    """`request` (a coroutine making one request) answers 400 naming each of `names`,
    and stores nothing."""
    before = await stored(shared.db)
    problem = assert_problem(await request, 400, slug)
    for name in names:
        assert name in problem["detail"], problem
    assert await stored(shared.db) == before
    return problem


# --- timestamps past the years 1 to 9999 in UTC ------------------------------------------------

# (just past the range in UTC, just within it)
TIMESTAMP_EDGES = [
    ("9999-12-31T23:59:59-23:59", "9999-12-31T00:00:59-00:00"),
    ("9999-12-31T23:00:00-01:00", "9999-12-31T23:00:00+01:00"),
    ("0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00-14:00"),
    ("0001-01-01T00:00:00.000001+00:01", "0001-01-01T00:00:00Z"),
]


@pytest.mark.parametrize("name", ["created_gte", "created_lt"])
@pytest.mark.parametrize(("outside", "inside"), TIMESTAMP_EDGES)
async def test_a_timestamp_its_offset_moves_out_of_the_years_1_to_9999_is_400(
    shared: Shared, name: str, outside: str, inside: str
) -> None:
    request = shared.client.get(LIST, params={name: outside})

    problem = await assert_refused(shared, request, name)
    assert "years 1 to 9999" in problem["detail"]
    listed = await shared.client.get(LIST, params={name: inside})
    assert listed.status_code == 200, listed.text


# --- refund amounts no payment can have --------------------------------------------------------

# Numeric takes no exponent below -16383, and none is a whole number of yen in range.
NO_PAYMENTS_AMOUNT = ["1e-20000", "-1e-20000", "1E-16384", "1E+200000"]


@pytest.mark.parametrize("amount", NO_PAYMENTS_AMOUNT)
async def test_a_refund_amount_no_payment_can_have_is_the_wrong_amount_and_refunds_nothing(
    shared: Shared, amount: str
) -> None:
    body = b'{"payment_id": 1, "reason": "r", "amount": %s}' % amount.encode()
    request = shared.client.post(REFUND, content=body, headers=JSON)

    problem = await assert_refused(shared, request, slug="refund-amount-mismatch")
    # The payment's own amount, as for any other amount that is not the payment's.
    assert problem["detail"].startswith("full refunds only: amount must be 1000, not ")
    assert await checks.payment_status(shared.db, payment_id=1) == "COMPLETED"


@pytest.mark.parametrize("amount", NO_PAYMENTS_AMOUNT)
async def test_a_refund_of_no_payment_is_404_whatever_its_amount(
    shared: Shared, amount: str
) -> None:
    body = b'{"payment_id": 999999, "reason": "r", "amount": %s}' % amount.encode()

    response = await shared.client.post(REFUND, content=body, headers=JSON)

    assert_problem(response, 404, "payment-not-found")


# --- a path too long to key ------------------------------------------------------------------


async def test_a_keyed_retry_on_a_path_longer_than_any_route_is_400_and_keys_nothing(
    shared: Shared,
) -> None:
    # Random letters: a repeated one compresses, and would fit PostgreSQL's index anyway.
    letters = "".join(random.Random(7).choices(string.ascii_letters, k=3000))
    request = shared.client.post(
        f"/api/v1/payments/{letters}/retry", headers={"Idempotency-Key": "long-path"}
    )

    await assert_refused(shared, request, "Idempotency-Key", "1024 bytes")


# --- NUL, wherever a request carries it ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", "/api/v1/payments/%00", "payment_id"),
        ("GET", "/api/v1/payments/1%00", "payment_id"),
        ("POST", "/api/v1/payments/1%00/retry", "payment_id"),
        ("POST", "/api/v1/events/%00/redeliver", "event_id"),
    ],
)
@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "with-key"])
async def test_a_nul_in_a_path_is_400_naming_the_parameter(
    shared: Shared, method: str, path: str, name: str, keyed: bool
) -> None:
    headers = {"Idempotency-Key": f"nul-path-{next(_order_ids)}"} if keyed else {}
    request = shared.client.request(method, path, headers=headers)

    await assert_refused(shared, request, f"path parameter {name!r}", NUL)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        (LIST, "status"),
        (LIST, "created_gte"),
        (LIST, "created_lt"),
        (LIST, "starting_after"),
        (LIST, "limit"),
        (EVENTS, "order_id"),
        (EVENTS, "starting_after"),
        (EVENTS, "limit"),
        ("/api/v1/payments/1", "unknown"),
        ("/health/ready", "unknown"),
    ],
)
@pytest.mark.parametrize("spelling", ["%00", "COMPLETED%00", "1%00"])
async def test_a_nul_in_a_query_parameter_is_400_naming_it(
    shared: Shared, path: str, name: str, spelling: str
) -> None:
    request = shared.client.get(f"{path}?{name}={spelling}")

    await assert_refused(shared, request, f"query parameter {name!r}", NUL)


async def test_a_nul_in_a_query_parameters_name_is_400(shared: Shared) -> None:
    request = shared.client.get(f"{LIST}?status%00=COMPLETED")

    await assert_refused(shared, request, "query parameter's name", NUL)


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        (PAYMENTS, b'{"order_id": 11, "amount": 1000, "currency": "JPY\\u0000"}', "`$.currency`"),
        (PAYMENTS, b'{"order_id": 11, "amount": 1000, "x\\u0000": 1}', "a key of `$`"),
        (PAYMENTS, b'{"order_id": 11, "amount": 1000, "x": [["\\u0000"]]}', "`$.x[0][0]`"),
        (REFUND, b'{"payment_id": 1, "reason": "cancelled\\u0000"}', "`$.reason`"),
        (REFUND, b'{"payment_id": 1, "reason": "\\u0000"}', "`$.reason`"),
        (BATCH, b'{"payments": [{"order_id": 12, "amount": 1000}], "\\u0000": 1}', "a key of `$`"),
        (BATCH, b'{"payments": "\\u0000"}', "`$.payments`"),
        ("/api/v1/payments/1/retry", b'{"\\u0000": 1}', "a key of `$`"),
        ("/api/v1/payments/1/retry", b'{"note": ["pm\\u0000"]}', "`$.note[0]`"),
    ],
)
async def test_a_nul_in_a_json_body_is_400_naming_the_field(
    shared: Shared, path: str, body: bytes, where: str
) -> None:
    request = shared.client.post(path, content=body, headers=JSON)

    await assert_refused(shared, request, where, NUL)


async def test_a_nul_in_a_batch_entry_is_that_entrys_400_as_the_single_create_would_be(
    shared: Shared,
) -> None:
    order_id = next(_order_ids)
    body = {
        "payments": [
            {"order_id": order_id, "amount": 1000, "currency": "JPY\u0000"},
            {"order_id": order_id + 1, "amount": 1000},
            {"order_id\u0000": order_id + 2, "amount": 1000},
        ]
    }
    single = await shared.client.post(PAYMENTS, json=body["payments"][0])

    response = await shared.client.post(BATCH, json=body)

    assert response.status_code == 200, response.text
    first, second, third = response.json()["results"]
    assert (first["status"], second["status"], third["status"]) == (400, 201, 400)
    assert first["problem"] == assert_problem(single, 400)
    assert "`$.currency`" in first["problem"]["detail"] and NUL in first["problem"]["detail"]
    assert "a key of `$`" in third["problem"]["detail"] and NUL in third["problem"]["detail"]
    assert await checks.count_payments_of_order(shared.db, order_id=order_id) == 0


async def test_a_nul_in_a_signed_gateway_callback_is_400_naming_the_field(
    shared: Shared,
) -> None:
    transaction_id = await checks.payment_transaction_id(shared.db, payment_id=1)
    body = b'{"transaction_id": "%s", "status": "completed\\u0000"}' % str(transaction_id).encode()
    request = shared.client.post(WEBHOOK, content=body, headers=signed_headers(body))

    await assert_refused(shared, request, "`$.status`", NUL)


@pytest.mark.parametrize(
    ("path", "header", "body"),
    [
        (WEBHOOK, "webhook-id", b'{"transaction_id": "%s", "status": "completed"}'),
        (PAYMENTS, "Idempotency-Key", b'{"order_id": %d, "amount": 1000}'),
        (REFUND, "Idempotency-Key", b'{"payment_id": 1, "reason": "r"}'),
    ],
)
async def test_a_nul_in_a_header_the_service_reads_is_400_naming_it(
    shared: Shared, path: str, header: str, body: bytes
) -> None:
    if path == WEBHOOK:  # signed, so that only the header is wrong
        body %= str(await checks.payment_transaction_id(shared.db, payment_id=1)).encode()
        headers = signed_headers(body, webhook_id="msg_\x00")
    else:
        body = body % next(_order_ids) if path == PAYMENTS else body
        headers = {**JSON, header: "key-\x00"}
    request = shared.asgi.post(path, content=body, headers=headers)

    await assert_refused(shared, request, f"header {header}", NUL)


# --- property: hostile values in every parameter and field of every endpoint ------------------
#
# Each request is valid but for some of its fields or parameters, which take hostile
# values: only then does a value reach as far as the statements (a body refused for its
# reason never sends its amount anywhere).

# Text of any kind: NUL, control characters, astral planes, very long. No lone surrogates:
# a URL or a JSON document carries only UTF-8 (those are tests/test_hostile_input.py's).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40) | st.sampled_from(
    ["\x00", "a\x00b", "COMPLETED\x00", "1\x00", "%00", "x" * 3000, "😀" * 700, "-1", "1e3"]
)
# Long and random: one repeated character compresses, and would fit where this does not.
LONG_TEXT = st.integers(0, 2**32).map(
    lambda seed: "".join(random.Random(seed).choices(string.ascii_letters, k=3000))
)
INTEGERS = st.integers() | st.sampled_from([0, -1, 2**63 - 1, 2**63, -(2**63) - 1, 10**30])
# Exponents past what numeric holds either way, and around its limits.
DECIMALS = st.sampled_from(
    [Decimal(s) for s in ["1e-20000", "-1e-20000", "1E-16384", "1E+200000", "1000.0"]]
) | st.builds(
    lambda digits, exponent: Decimal(f"{digits}E{exponent}"),
    st.integers(-(10**8), 10**8),
    st.integers(-16_400, -16_300) | st.integers(-40_000, 40_000) | st.integers(-20, 20),
)
NUMBERS = INTEGERS | DECIMALS
JSON_VALUES = st.recursive(
    TEXT | NUMBERS | st.booleans() | st.none(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
)
# What an HTTP header can carry (a NUL in one is the test above's: servers refuse it).
PRINTABLE_ASCII = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """RFC 3339 timestamps of the years 1 to 9999, often at either end, with any offset:
    some fall outside those years in UTC."""
    ends = st.sampled_from([datetime.min, datetime.max])
    moment = draw(ends | st.datetimes() | ends.map(lambda end: end.replace(microsecond=0)))
    minutes = draw(st.integers(-(24 * 60 - 1), 24 * 60 - 1))
    sign = "-" if minutes < 0 else "+"
    return f"{moment.isoformat()}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


IDS = st.integers(1, 2**63 - 1)
REASONS = st.text(st.characters(codec="utf-8", categories=("L", "N")), min_size=1, max_size=20)
# Each field or parameter: (a valid value, hostile values).
Fields = dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]]
CREATE_FIELDS: Fields = {
    "order_id": (IDS, INTEGERS | DECIMALS),
    "amount": (st.integers(100, 1_000_000), NUMBERS),
    "currency": (st.just("JPY"), TEXT),
}
REFUND_FIELDS: Fields = {
    "payment_id": (st.just(1) | IDS, INTEGERS),
    "reason": (REASONS, TEXT),
    "amount": (st.just(1000) | st.integers(100, 1_000_000), NUMBERS),
}
CALLBACK_FIELDS: Fields = {
    "transaction_id": (st.uuids().map(str), TEXT),
    "status": (st.sampled_from(["completed", "failed"]), TEXT),
}
LIST_PARAMETERS: Fields = {
    "status": (st.sampled_from(["COMPLETED", "FAILED", "REFUNDED"]), TEXT),
    "created_gte": (timestamps(), TEXT),
    "created_lt": (timestamps(), TEXT),
    "starting_after": (IDS.map(str), TEXT | INTEGERS.map(str)),
    "limit": (st.integers(1, 100).map(str), TEXT | INTEGERS.map(str)),
}
EVENT_PARAMETERS: Fields = {
    "order_id": (IDS.map(str), TEXT | INTEGERS.map(str)),
    "starting_after": (st.uuids().map(str), TEXT),
    "limit": (st.integers(1, 100).map(str), TEXT | INTEGERS.map(str)),
}


@st.composite
def values(draw: st.DrawFn, fields: Fields, *, hostile: st.SearchStrategy[Any]) -> dict[str, Any]:
    """Every one of `fields` valid but one or two hostile; now and then one left out, or
    an unknown one added."""
    result = {name: draw(valid) for name, (valid, _) in fields.items()}
    names = sorted(fields)
    if names:
        for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)):
            result[name] = draw(fields[name][1] | hostile)
        if draw(st.integers(0, 5)) == 0:
            del result[draw(st.sampled_from(names))]
    if not names or draw(st.integers(0, 9)) == 0:
        result[draw(TEXT)] = draw(hostile)
    return result


def body(fields: Fields) -> st.SearchStrategy[Any]:
    return values(fields, hostile=JSON_VALUES) | JSON_VALUES


def to_json(value: Any) -> bytes:
    """JSON text, Decimals written exactly as numbers (json.dumps cannot)."""

    def text(value: Any) -> str:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, dict):
            return "{" + ", ".join(f"{json.dumps(k)}: {text(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ", ".join(text(item) for item in value) + "]"
        return json.dumps(value)

    return text(value).encode()


ENDPOINTS = [
    "list", "by id", "by order", "create", "batch", "refund", "retry", "callback",
    "events", "redeliver", "health", "metrics",
]  # fmt: skip


@st.composite
def requests(draw: st.DrawFn, endpoint: str) -> tuple[str, str, dict[str, Any]]:
    """One request to `endpoint`: (method, path, httpx's arguments)."""
    key = draw(st.none() | st.text(PRINTABLE_ASCII, min_size=1, max_size=20))
    headers = {"content-type": "application/json", **({"Idempotency-Key": key} if key else {})}
    in_path = draw(st.just("1") | IDS.map(str) | TEXT | INTEGERS.map(str) | LONG_TEXT)
    path_id = quote(in_path, safe="")
    if endpoint in ("list", "events", "health", "metrics"):
        known = {"list": LIST_PARAMETERS, "events": EVENT_PARAMETERS}.get(endpoint, {})
        params = draw(values(known, hostile=TEXT))
        path = {"list": LIST, "events": EVENTS, "health": "/health/ready", "metrics": "/metrics"}
        return "GET", path[endpoint], {"params": params}
    if endpoint in ("by id", "by order"):
        kind = "" if endpoint == "by id" else "order/"
        return "GET", f"/api/v1/payments/{kind}{path_id}", {}
    if endpoint == "redeliver":
        return "POST", f"/api/v1/events/{path_id}/redeliver", {"headers": headers}
    if endpoint == "retry":
        retried = draw(st.just({}) | st.none() | JSON_VALUES)
        content = b"" if retried is None else to_json(retried)
        return "POST", f"/api/v1/payments/{path_id}/retry", {"content": content, "headers": headers}
    if endpoint == "callback":  # signed, so that the body is read
        content = to_json(draw(body(CALLBACK_FIELDS)))
        webhook_id = draw(st.none() | st.text(PRINTABLE_ASCII, min_size=1, max_size=300))
        signed = signed_headers(content, webhook_id=webhook_id)
        return "POST", WEBHOOK, {"content": content, "headers": signed}
    if endpoint == "batch":
        entries = draw(st.lists(body(CREATE_FIELDS), min_size=1, max_size=4))
        content = to_json(draw(st.just({"payments": entries}) | JSON_VALUES))
        return "POST", BATCH, {"content": content, "headers": headers}
    path, fields = (PAYMENTS, CREATE_FIELDS) if endpoint == "create" else (REFUND, REFUND_FIELDS)
    return "POST", path, {"content": to_json(draw(body(fields))), "headers": headers}


PROPERTY_SETTINGS = settings(
    max_examples=150,  # per endpoint
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


def server_errors(base_url: str) -> list[str]:
    """Each endpoint's first failure (a 5xx), as hypothesis reports it."""
    failures = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for endpoint in ENDPOINTS:

            @PROPERTY_SETTINGS
            @given(request=requests(endpoint))
            def answer(request: tuple[str, str, dict[str, Any]]) -> None:
                method, path, arguments = request
                response = client.request(method, path, **arguments)
                assert response.status_code < 500, (method, path, arguments, response.text)

            try:
                answer()
            except AssertionError as exc:
                failures.append(f"{endpoint}: {exc}")
    return failures


@pytest.mark.slow
async def test_no_value_of_any_parameter_or_field_of_any_endpoint_is_a_5xx(
    service: RunningService,
) -> None:
    # A service of its own: these requests refund and retry payments. The client is
    # synchronous (hypothesis draws synchronously); the service serves in this loop.
    created = await service.client.post(PAYMENTS, json={"order_id": 1, "amount": 1000})
    assert created.status_code == 201, created.text
    failures = await asyncio.to_thread(server_errors, service.url)
    assert not failures, "\n\n".join(failures)
    assert (await service.client.get("/health/ready")).status_code == 200
