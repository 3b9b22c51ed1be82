"""POST /api/v1/payments/ over real HTTP on a real PostgreSQL (CONTRACT.md, "Payments API").

Bodies are mostly sent as raw JSON text, so that the exact literal under test
(`100.0`, `1e400`, `10**30` as an integer) reaches the service unchanged.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.listing import get_payment
from tests.support.order_stub import OrderServiceStub
from tests.support.problems import assert_problem
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()

PAYMENTS = "/api/v1/payments/"
REFUND = "/api/v1/payments/refund"
JSON_HEADERS = {"content-type": "application/json"}
DECLINED_AMOUNT = 666
PAYMENT_FIELDS = {
    "id",
    "order_id",
    "amount",
    "currency",
    "status",
    "payment_method",
    "transaction_id",
    "created_at",
    "updated_at",
    "failure_code",
    "failure_message",
    "metadata",  # CONTRACT.md, "Metadata": everywhere the payment is
    "gateway_reference",  # CONTRACT.md, "A real payment gateway": the gateway's reference
    "next_action",  # and what the buyer's page does next while PENDING
}


# --- helpers ---------------------------------------------------------------------------------


def running(
    database_url: str, order_stub: OrderServiceStub, **sections: dict[str, Any]
) -> AbstractAsyncContextManager[RunningService]:
    """The service with non-default settings (e.g. gateway={"mode": "async"})."""
    return serve(make_settings(database_url, order_stub.url, **sections))


async def post_raw(
    client: httpx.AsyncClient, body: str | bytes, path: str = PAYMENTS
) -> httpx.Response:
    return await client.post(path, content=body, headers=JSON_HEADERS)


def body_with(order_id: str = "1", amount: str = "5000", currency: str | None = None) -> str:
    """A create body from JSON literals, e.g. body_with(amount="1e400")."""
    fields = [f'"order_id": {order_id}', f'"amount": {amount}']
    if currency is not None:
        fields.append(f'"currency": {currency}')
    return "{" + ", ".join(fields) + "}"


async def create(
    client: httpx.AsyncClient, order_id: int = 1, amount: int | float = 5000
) -> httpx.Response:
    return await client.post(PAYMENTS, json={"order_id": order_id, "amount": amount})


async def create_ok(
    client: httpx.AsyncClient, order_id: int = 1, amount: int | float = 5000
) -> dict[str, Any]:
    response = await create(client, order_id, amount)
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


async def outbox_rows(db: asyncpg.Connection, payment_id: int) -> list[asyncpg.Record]:
    return [row async for row in checks.outbox_events_of_payment(db, payment_id=payment_id)]


async def outbox_rows_of_order(db: asyncpg.Connection, order_id: int) -> list[asyncpg.Record]:
    return [row async for row in checks.outbox_events_of_order(db, order_id=order_id)]


def assert_webhook(row: asyncpg.Record, status: str, payment: dict[str, Any]) -> None:
    """The outbox row carries exactly the contract's webhook body for this payment."""
    body = json.loads(row["body"])
    assert set(body) == {"payment_status", "transaction_id"}
    assert body == {"payment_status": status, "transaction_id": payment["transaction_id"]}
    assert row["order_id"] == payment["order_id"]
    assert row["payment_id"] == payment["id"]


async def payment_count(db: asyncpg.Connection) -> int:
    count: int = await checks.count_payments(db)
    return count


# --- amounts ---------------------------------------------------------------------------------

ACCEPTED_AMOUNTS = [
    ("100", 100),
    ("100.0", 100),
    ("1e2", 100),
    ("89800.0", 89800),
    ("1000000", 1_000_000),
    ("1000000.0", 1_000_000),
]

REFUSED_AMOUNTS = [
    "99",
    "99.0",
    "100.5",
    "1000000.5",
    "1000001",
    "1000001.0",
    "0",
    "-0.0",
    "-1",
    "-100",
    "-1000000",
    '"100"',
    '"abc"',
    "true",
    "false",
    "null",
    "[100]",
    '{"value": 100}',
    "1e300",
    "1e400",
    "-1e400",
    str(10**30),
    str(-(10**30)),
]


async def test_an_amount_within_the_range_is_accepted(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    for order_id, (literal, expected) in enumerate(ACCEPTED_AMOUNTS, start=1):
        with subtests.test(literal=literal):
            response = await post_raw(
                service.client, body_with(order_id=str(order_id), amount=literal)
            )

            assert response.status_code == 201, response.text
            payment = response.json()
            amount = payment["amount"]
            assert isinstance(amount, int | float) and not isinstance(amount, bool)
            assert amount == expected
            assert await checks.payment_amount(db, payment_id=payment["id"]) == Decimal(expected)


async def test_an_amount_outside_the_rules_is_400(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    for literal in REFUSED_AMOUNTS:
        with subtests.test(literal=literal):
            response = await post_raw(service.client, body_with(amount=literal))

            assert_problem(response, 400)
            assert await checks.count_payments_of_order(db, order_id=1) == 0


async def test_an_amount_a_float_would_round_to_a_whole_number_is_still_400(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    """The contract asks for a whole number of yen from 100: these JSON numbers are neither.

    Decoded as binary floats they become exactly 100.0, so only exact decoding sees them.
    """

    for literal in ["99.99999999999999999", "100.0000000000000001"]:
        with subtests.test(literal=literal):
            response = await post_raw(service.client, body_with(amount=literal))

            assert_problem(response, 400)
            assert await checks.count_payments_of_order(db, order_id=1) == 0


# --- the created resource --------------------------------------------------------------------


async def test_the_201_body_is_the_whole_payment_resource(service: RunningService) -> None:
    response = await service.client.post(
        PAYMENTS, json={"order_id": 42, "amount": 89800.0, "currency": "JPY"}
    )

    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    payment = response.json()
    assert set(payment) == PAYMENT_FIELDS  # no `refunds` on the create answer
    assert isinstance(payment["id"], int) and payment["id"] >= 1
    assert payment["order_id"] == 42
    assert isinstance(payment["amount"], float) and payment["amount"] == 89800.0
    assert payment["currency"] == "JPY"
    assert payment["status"] == "COMPLETED"
    assert payment["payment_method"] == "credit_card"
    assert str(uuid.UUID(payment["transaction_id"])) == payment["transaction_id"]
    created = datetime.fromisoformat(payment["created_at"])
    updated = datetime.fromisoformat(payment["updated_at"])
    assert created.tzinfo is not None and updated.tzinfo is not None
    assert updated >= created


@pytest.mark.parametrize("path", ["/api/v1/payments/", "/api/v1/payments"])
async def test_create_answers_with_and_without_the_trailing_slash(
    service: RunningService, db: asyncpg.Connection, path: str
) -> None:
    response = await service.client.post(path, json={"order_id": 7, "amount": 1000})

    assert response.status_code == 201, response.text
    assert response.json()["order_id"] == 7
    assert await checks.count_payments_of_order(db, order_id=7) == 1


async def test_each_payment_gets_its_own_transaction_id(service: RunningService) -> None:
    first = await create_ok(service.client, order_id=1)
    second = await create_ok(service.client, order_id=2)

    assert first["id"] != second["id"]
    assert first["transaction_id"] != second["transaction_id"]


# --- currency, unknown fields, order_id, missing fields ---------------------------------------


async def test_an_omitted_currency_is_jpy(service: RunningService) -> None:
    payment = await create_ok(service.client, order_id=3)

    assert payment["currency"] == "JPY"
    assert (await get_payment(service.client, payment["id"]))["currency"] == "JPY"


async def test_a_currency_other_than_jpy_is_400(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    for currency in ['"USD"', '"jpy"', '"JPY "', '""', "1", "null", '["JPY"]']:
        with subtests.test(currency=currency):
            response = await post_raw(service.client, body_with(currency=currency))

            assert_problem(response, 400)
            assert await checks.count_payments_of_order(db, order_id=1) == 0


async def test_an_unknown_field_is_400(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    for extra in [
        {"batch_id": 1},
        {"order_ids": [1, 2]},
        {"status": "COMPLETED"},
        {"Currency": "JPY"},
        {"payment_method": "credit_card"},
    ]:
        with subtests.test(extra=extra):
            response = await service.client.post(
                PAYMENTS, json={"order_id": 1, "amount": 5000, **extra}
            )

            assert_problem(response, 400)
            assert await payment_count(db) == 0


async def test_an_order_id_outside_1_to_2_63_minus_1_is_400(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    for literal in ["0", "-1", str(2**63), str(2**64), str(10**30), '"1"', "1.5", "true", "null"]:
        with subtests.test(literal=literal):
            response = await post_raw(service.client, body_with(order_id=literal))

            assert_problem(response, 400)
            assert await payment_count(db) == 0


async def test_a_missing_field_is_400(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    for body in [
        {},
        {"amount": 5000},
        {"order_id": 1},
        {"currency": "JPY"},
        {"amount": 5000, "currency": "JPY"},
    ]:
        with subtests.test(body=body):
            response = await service.client.post(PAYMENTS, json=body)

            assert_problem(response, 400)
            assert await payment_count(db) == 0


# --- bodies that are not a create request ----------------------------------------------------


async def test_a_body_that_is_not_an_object_is_400(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    for body in [
        "[]",
        '[{"order_id": 1, "amount": 5000}]',
        '"order_id"',
        "1",
        "null",
        "true",
    ]:
        with subtests.test(body=body):
            assert_problem(await post_raw(service.client, body), 400)
            assert await payment_count(db) == 0


async def test_malformed_json_is_400(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    for body in [
        b'{"order_id": 1,',
        b"{'order_id': 1, 'amount': 5000}",
        b"order_id=1&amount=5000",
        b'{"order_id": 1, "amount": 5000}x',
        b'{"order_id": 1, "amount": 5000,}',
        b'{"order_id": 1, "amount": 0x1388}',
        b'{"order_id": 1, "amount": NaN}',
        b'{"order_id": 1, "amount": Infinity}',
        b"\xff\xfe\x00",
        b'{"order_id": 1, "amount": 5000, "currency": "\xc3\x28"}',
        b'{"order_id": 1, "amount": 5000, "\xff": 1}',
    ]:
        with subtests.test(body=body):
            assert_problem(await post_raw(service.client, body), 400)
            assert await payment_count(db) == 0


async def test_an_empty_body_is_400(service: RunningService, db: asyncpg.Connection) -> None:
    assert_problem(await post_raw(service.client, b""), 400)
    assert await payment_count(db) == 0


# --- duplicates ------------------------------------------------------------------------------


async def completed(client: httpx.AsyncClient, order_id: int) -> dict[str, Any]:
    payment = await create_ok(client, order_id)
    return await get_payment(client, payment["id"])


async def refunded(client: httpx.AsyncClient, order_id: int) -> dict[str, Any]:
    payment = await create_ok(client, order_id)
    response = await client.post(REFUND, json={"payment_id": payment["id"], "reason": "cancelled"})
    assert response.status_code == 201, response.text
    return await get_payment(client, payment["id"])


async def failed(client: httpx.AsyncClient, order_id: int) -> dict[str, Any]:
    response = await create(client, order_id, DECLINED_AMOUNT)
    payment_id = assert_problem(response, 402)["payment_id"]
    return await get_payment(client, payment_id)


async def test_a_second_payment_for_an_order_is_400_whatever_the_first_ones_status(
    database_url: str,
    order_stub: OrderServiceStub,
    db: asyncpg.Connection,
    subtests: pytest.Subtests,
) -> None:
    firsts = [(10, completed, "COMPLETED"), (11, failed, "FAILED"), (12, refunded, "REFUNDED")]
    async with running(
        database_url, order_stub, gateway={"decline_amounts": [DECLINED_AMOUNT]}
    ) as svc:
        for order_id, make, status in firsts:
            with subtests.test(status):
                first = await make(svc.client, order_id)
                assert first["status"] == status
                events_before = len(await outbox_rows(db, first["id"]))

                response = await create(svc.client, order_id=order_id, amount=5000)

                assert_problem(response, 400)
                assert await checks.count_payments_of_order(db, order_id=order_id) == 1
                assert await get_payment(svc.client, first["id"]) == first
                assert len(await outbox_rows(db, first["id"])) == events_before


async def test_twenty_concurrent_creates_for_one_order_make_exactly_one_payment(
    service: RunningService, db: asyncpg.Connection
) -> None:
    responses = await asyncio.gather(*(create(service.client, 77, 5000) for _ in range(20)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [400] * 19, [r.text for r in responses]
    for response in responses:
        if response.status_code == 400:
            assert_problem(response, 400)
    assert await checks.count_payments_of_order(db, order_id=77) == 1
    (winner,) = [r.json() for r in responses if r.status_code == 201]
    rows = await outbox_rows(db, winner["id"])
    assert len(rows) == 1
    assert_webhook(rows[0], "completed", winner)


# --- gateway outcomes and the outbox ---------------------------------------------------------


async def test_a_declined_payment_is_402_naming_the_payment_stored_failed_with_one_webhook(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    async with running(
        database_url, order_stub, gateway={"decline_amounts": [DECLINED_AMOUNT]}
    ) as svc:
        response = await create(svc.client, order_id=5, amount=DECLINED_AMOUNT)

        problem = assert_problem(response, 402)
        payment_id = problem["payment_id"]
        assert isinstance(payment_id, int)
        payment = await get_payment(svc.client, payment_id)
        assert payment["status"] == "FAILED"
        assert payment["order_id"] == 5
        assert payment["amount"] == DECLINED_AMOUNT
        by_order = await svc.client.get("/api/v1/payments/order/5")
        assert by_order.status_code == 200
        assert by_order.json()["id"] == payment_id

    rows = await outbox_rows(db, payment_id)
    assert len(rows) == 1
    assert_webhook(rows[0], "failed", payment)


async def test_an_amount_outside_the_decline_rule_is_still_approved(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    async with running(
        database_url, order_stub, gateway={"decline_amounts": [DECLINED_AMOUNT]}
    ) as svc:
        assert (await create_ok(svc.client, order_id=6, amount=667))["status"] == "COMPLETED"


async def test_completion_and_refund_each_leave_exactly_one_outbox_row(
    service: RunningService, db: asyncpg.Connection
) -> None:
    payment = await create_ok(service.client, order_id=9, amount=12345)

    rows = await outbox_rows(db, payment["id"])
    assert len(rows) == 1
    assert_webhook(rows[0], "completed", payment)

    response = await service.client.post(
        REFUND, json={"payment_id": payment["id"], "reason": "Order cancelled by customer"}
    )
    assert response.status_code == 201, response.text

    rows = await outbox_rows(db, payment["id"])
    assert len(rows) == 2
    completed_row, refunded_row = rows
    assert_webhook(completed_row, "completed", payment)
    assert_webhook(refunded_row, "refunded", payment)
    assert refunded_row["seq"] > completed_row["seq"]
    assert completed_row["id"] != refunded_row["id"]
    assert [r["seq"] for r in await outbox_rows_of_order(db, 9)] == [r["seq"] for r in rows]


@pytest.fixture
async def async_service(
    database_url: str, order_stub: OrderServiceStub
) -> AsyncIterator[RunningService]:
    gateway = {"mode": "async", "reconcile_after_seconds": 3600.0}
    async with running(database_url, order_stub, gateway=gateway) as svc:
        yield svc


async def test_in_async_gateway_mode_the_payment_is_201_processing_without_a_webhook(
    async_service: RunningService, db: asyncpg.Connection
) -> None:
    payment = await create_ok(async_service.client, order_id=11)

    assert payment["status"] == "PROCESSING"
    assert set(payment) == PAYMENT_FIELDS
    assert (await get_payment(async_service.client, payment["id"]))["status"] == "PROCESSING"
    assert await outbox_rows(db, payment["id"]) == []


# --- body size (the default limit, chunked bodies: tests/test_hostile_input.py) --------------


def padded(order_id: int, size: int) -> bytes:
    """A valid create body of exactly `size` bytes (JSON allows trailing whitespace)."""
    body = json.dumps({"order_id": order_id, "amount": 5000}).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


async def test_the_configured_body_limit_applies(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    async with running(database_url, order_stub, server={"max_body_bytes": 1024}) as svc:
        at_limit = await post_raw(svc.client, padded(1, 1024))
        over = await post_raw(svc.client, padded(2, 1025))

    assert at_limit.status_code == 201, at_limit.text
    assert_problem(over, 413)
    assert await checks.count_payments_of_order(db, order_id=2) == 0
