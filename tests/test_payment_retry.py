"""POST /api/v1/payments/{payment_id}/retry: a declined order paid after all, by its one
payment's next attempt (CONTRACT.md, "Declines, and paying a declined order again").

The simulator decides by amount alone, so a declined amount stays declined. A retry
that succeeds is what happens once the customer has fixed their card: here, the
service restarted on the same database without the decline rule.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from service.commands.reconciliation import reconcile_stuck_payments
from service.db.pool import create_pool
from service.db.sql import load_queries
from service.db.unit_of_work import UnitOfWork
from service.domain.rules import RETRY_SOURCES, PaymentStatus, sources_of
from service.gateway import SimulatedGateway
from service.settings import DatabaseSettings, GatewaySettings
from tests.support.callbacks import signed_headers
from tests.support.order_stub import OrderServiceStub
from tests.support.payments import payment_in, settle, start_retry
from tests.support.problems import assert_problem
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries
from tests.test_idempotency_retries import controlled
from tests.test_reconciler import command

checks: Any = load_test_queries()
sql: Any = load_queries()

PAYMENTS = "/api/v1/payments/"
DECLINED = 666
DECLINING = {"decline_codes": {str(DECLINED): "insufficient_funds"}}


def running(
    database_url: str, stub: OrderServiceStub, **gateway: Any
) -> AbstractAsyncContextManager[RunningService]:
    return serve(make_settings(database_url, stub.url, gateway=gateway))


async def declined_payment(svc: RunningService, order_id: int = 1) -> dict[str, Any]:
    """A payment the gateway declined (the service must decline DECLINED)."""
    response = await svc.client.post(PAYMENTS, json={"order_id": order_id, "amount": DECLINED})
    payment_id = assert_problem(response, 402, "payment-declined")["payment_id"]
    payment: dict[str, Any] = (await svc.client.get(f"{PAYMENTS}{payment_id}")).json()
    return payment


async def retry(client: httpx.AsyncClient, payment_id: int | str, **kwargs: Any) -> httpx.Response:
    return await client.post(f"{PAYMENTS}{payment_id}/retry", **kwargs)


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


async def webhook_bodies(stub: OrderServiceStub, order_id: int, count: int) -> list[Any]:
    await stub.wait_for_accepted(count)
    return [call.body for call in stub.accepted_for(order_id)]


@pytest.fixture
async def declining(
    database_url: str, order_stub: OrderServiceStub
) -> AsyncIterator[RunningService]:
    async with running(database_url, order_stub, **DECLINING) as svc:
        yield svc


def test_a_retry_is_the_state_machine_s_move_from_failed_back_to_processing() -> None:
    assert RETRY_SOURCES == [PaymentStatus.FAILED]
    assert PaymentStatus.FAILED in sources_of(PaymentStatus.PROCESSING)


async def test_a_declined_payment_retried_once_the_card_is_fixed_completes_with_both_attempts(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    async with running(database_url, order_stub, **DECLINING) as svc:
        failed = await declined_payment(svc)
    # The customer fixed their card: the gateway approves the same amount now.
    async with running(database_url, order_stub) as svc:
        response = await retry(svc.client, failed["id"])
        read = (await svc.client.get(f"{PAYMENTS}{failed['id']}")).json()
        bodies = await webhook_bodies(order_stub, 1, 2)
    timeline = [(r["what"], r["detail"]) async for r in sql.ops_order_timeline(db, order_id=1)]

    assert response.status_code == 201, response.text
    paid = response.json()
    assert (paid["id"], paid["status"], paid["failure_code"]) == (failed["id"], "COMPLETED", None)
    assert paid["transaction_id"] != failed["transaction_id"]
    first, second = read["attempts"]
    assert first == failed["attempts"][0]
    started = second.pop("created_at")
    assert second == {
        "transaction_id": paid["transaction_id"],
        "status": "COMPLETED",
        "failure_code": None,
    }
    assert at(first["created_at"]) < at(started) <= at(paid["updated_at"])
    assert failed["attempts"][0]["failure_code"] == "insufficient_funds"
    assert bodies == [
        {"payment_status": "failed", "transaction_id": failed["transaction_id"]},
        {"payment_status": "completed", "transaction_id": paid["transaction_id"]},
    ]
    whats = [what for what, _ in timeline]
    assert whats == [
        "payment created", "payment failed", "webhook failed",
        "payment retried", "payment completed", "webhook completed",
    ]  # fmt: skip
    assert timeline[1][1] == "insufficient_funds"


async def test_a_retry_declined_again_is_402_and_every_attempt_is_kept(
    declining: RunningService, order_stub: OrderServiceStub
) -> None:
    failed = await declined_payment(declining)

    problems = [assert_problem(await retry(declining.client, failed["id"]), 402) for _ in "ab"]
    read = (await declining.client.get(f"{PAYMENTS}{failed['id']}")).json()

    for problem in problems:
        assert problem["type"].endswith("/payment-declined")
        assert (problem["payment_id"], problem["failure_code"]) == (
            failed["id"],
            "insufficient_funds",
        )
    attempts = read["attempts"]
    assert [a["status"] for a in attempts] == ["FAILED"] * 3
    assert len({a["transaction_id"] for a in attempts}) == 3
    assert attempts[-1]["transaction_id"] == read["transaction_id"]
    assert [a["created_at"] for a in attempts] == sorted(a["created_at"] for a in attempts)
    bodies = await webhook_bodies(order_stub, 1, 3)
    assert bodies == [
        {"payment_status": "failed", "transaction_id": a["transaction_id"]} for a in attempts
    ]


@pytest.mark.parametrize(
    "status",
    [
        PaymentStatus.COMPLETED,
        PaymentStatus.REFUNDED,
        PaymentStatus.PROCESSING,
        PaymentStatus.PENDING,
    ],
    ids=str,
)
async def test_only_a_failed_payment_can_be_retried(
    service: RunningService, db: asyncpg.Connection, status: PaymentStatus
) -> None:
    payment_id = await payment_in(db, 1, status)
    before = (await service.client.get(f"{PAYMENTS}{payment_id}")).json()

    problem = assert_problem(await retry(service.client, payment_id), 400, "not-retryable")

    assert problem["payment_status"] == status
    assert (await service.client.get(f"{PAYMENTS}{payment_id}")).json() == before


async def test_an_unknown_payment_is_404_and_an_id_that_is_no_integer_400(
    service: RunningService,
) -> None:
    for unknown in ("999", "0", "-5", "9" * 19, "9" * 30):
        assert_problem(await retry(service.client, unknown), 404, "payment-not-found")
    for not_an_id in ("abc", "1.5", "1e3"):
        assert_problem(await retry(service.client, not_an_id), 400, "invalid-request")


async def test_the_body_is_nothing_or_an_empty_object(declining: RunningService) -> None:
    failed = await declined_payment(declining)
    client = declining.client

    for body in (b'{"amount": 5000}', b"[]", b"null", b"{} {}", b"{", b'"x"'):
        response = await retry(client, failed["id"], content=body)
        assert_problem(response, 400, "invalid-request")
    as_text = {"content-type": "text/plain"}
    response = await retry(client, failed["id"], content=b"{}", headers=as_text)
    assert_problem(response, 415, "unsupported-media-type")
    assert len((await client.get(f"{PAYMENTS}{failed['id']}")).json()["attempts"]) == 1
    assert (await retry(client, failed["id"])).status_code == 402
    assert (await retry(client, failed["id"], json={})).status_code == 402
    assert (await retry(client, failed["id"], content=b" { } ")).status_code == 402


async def test_of_concurrent_retries_of_one_payment_exactly_one_runs(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    async with running(database_url, order_stub, **DECLINING) as svc:
        failed = await declined_payment(svc)
    async with running(database_url, order_stub) as svc:
        responses = await asyncio.gather(*(retry(svc.client, failed["id"]) for _ in range(10)))
        read = (await svc.client.get(f"{PAYMENTS}{failed['id']}")).json()

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [400] * 9, [r.text for r in responses]
    for response in responses:
        if response.status_code == 400:
            assert_problem(response, 400, "not-retryable")
    assert [a["status"] for a in read["attempts"]] == ["FAILED", "COMPLETED"]
    events = [json.loads(r["body"]) async for r in checks.outbox_events_of_order(db, order_id=1)]
    assert [e["payment_status"] for e in events] == ["failed", "completed"]


async def test_the_database_lets_one_of_two_concurrent_retries_take_the_payment(
    database_url: str, db: asyncpg.Connection
) -> None:
    payment_id = await payment_in(db, 1, PaymentStatus.FAILED)
    first, second = [await asyncpg.connect(database_url) for _ in "12"]
    try:
        async with first.transaction():
            taken = await start_retry(first, payment_id)
            # The second waits for the first's row lock, then finds it no longer FAILED.
            late = asyncio.create_task(start_retry(second, payment_id))
            await asyncio.sleep(0)
        assert await late is None
    finally:
        await first.close()
        await second.close()
    assert taken is not None and taken["status"] == "PROCESSING"


async def test_an_idempotency_key_replays_a_retry_s_answer_without_charging_again(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    async with running(database_url, order_stub, **DECLINING) as svc:
        failed = await declined_payment(svc)
        key = {"Idempotency-Key": "retry-1-declined"}
        first = await retry(svc.client, failed["id"], headers=key)
        again = await retry(svc.client, failed["id"], headers=key)
    async with running(database_url, order_stub) as svc:
        key = {"Idempotency-Key": "retry-1-fixed"}
        paid = await retry(svc.client, failed["id"], headers=key)
        replayed = await retry(svc.client, failed["id"], headers=key)
        other_body = await retry(svc.client, failed["id"], headers=key, json={})
        read = (await svc.client.get(f"{PAYMENTS}{failed['id']}")).json()

    assert (first.status_code, again.status_code) == (402, 402)
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert paid.status_code == 201 and replayed.content == paid.content
    assert replayed.headers["idempotent-replayed"] == "true"
    assert other_body.status_code == 422
    assert [a["status"] for a in read["attempts"]] == ["FAILED", "FAILED", "COMPLETED"]


async def test_a_crash_between_the_steps_of_a_retry_is_reconciled(
    database_url: str, db: asyncpg.Connection
) -> None:
    payment_id = await payment_in(db, 1, PaymentStatus.FAILED)
    old = await checks.payment_transaction_id(db, payment_id=payment_id)
    # The retry's first step committed, then the process died before the gateway answered.
    started = await start_retry(db, payment_id)
    await checks.age_payment(db, payment_id=payment_id, seconds=90)
    pool = await create_pool(database_url, DatabaseSettings(pool_min_size=1, pool_max_size=2))
    try:
        uow = UnitOfWork(pool, sql)
        [settled] = await reconcile_stuck_payments(
            command(), uow, SimulatedGateway(GatewaySettings())
        )
    finally:
        await pool.close()

    assert (settled.id, settled.status) == (payment_id, "COMPLETED")
    assert settled.transaction_id == started["transaction_id"] != old
    events = [
        json.loads(r["body"])
        async for r in checks.outbox_events_of_payment(db, payment_id=payment_id)
    ]
    assert events[-1] == {
        "payment_status": "completed",
        "transaction_id": str(settled.transaction_id),
    }


async def test_a_settlement_naming_an_earlier_attempt_changes_nothing(
    db: asyncpg.Connection,
) -> None:
    """What the reconciler would write with an answer about an attempt that a callback
    settled and a retry superseded while it asked: nothing (the new attempt is its own)."""
    payment_id = await payment_in(db, 1, PaymentStatus.FAILED)
    old = await checks.payment_transaction_id(db, payment_id=payment_id)
    await start_retry(db, payment_id)

    stale = await settle(db, payment_id, old, PaymentStatus.COMPLETED, request_id="reconciler")

    assert stale is None
    assert await checks.payment_status(db, payment_id=payment_id) == "PROCESSING"


async def callback(svc: RunningService, transaction_id: str, status: str) -> httpx.Response:
    body = json.dumps({"transaction_id": transaction_id, "status": status}).encode()
    return await svc.client.post(f"{PAYMENTS}webhook", content=body, headers=signed_headers(body))


async def test_a_callback_naming_an_earlier_attempt_never_changes_the_payment(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    """The same outcome that attempt ended with is a 200 no-op (a gateway redelivering
    it is not an error); another outcome is 409, since that attempt is over."""
    async with running(database_url, order_stub, mode="async") as svc:
        created = (await svc.client.post(PAYMENTS, json={"order_id": 1, "amount": 5000})).json()
        old = created["transaction_id"]
        assert (await callback(svc, old, "failed")).status_code == 200
        retried = await retry(svc.client, created["id"])
        assert (retried.status_code, retried.json()["status"]) == (201, "PROCESSING")

        same = await callback(svc, old, "failed")
        other = await callback(svc, old, "completed")
        still = (await svc.client.get(f"{PAYMENTS}{created['id']}")).json()
        current = await callback(svc, retried.json()["transaction_id"], "completed")

    assert (same.status_code, same.json()) == (
        200,
        {"payment_id": created["id"], "status": "PROCESSING"},
    )
    problem = assert_problem(other, 409, "transition-not-allowed")
    assert "superseded by a retry" in problem["detail"]
    assert still["status"] == "PROCESSING" and still["transaction_id"] != old
    assert [a["status"] for a in still["attempts"]] == ["FAILED", "PROCESSING"]
    assert current.json() == {"payment_id": created["id"], "status": "COMPLETED"}


async def test_options_and_the_openapi_document_describe_the_retry(service: RunningService) -> None:
    options = await service.client.options(f"{PAYMENTS}1/retry")
    document = (await service.client.get("/schema/openapi.json")).json()

    assert options.status_code == 204
    assert set(options.headers["allow"].replace(" ", "").split(",")) == {"OPTIONS", "POST"}
    operation = document["paths"]["/api/v1/payments/{payment_id}/retry"]["post"]
    assert operation["operationId"] == "retryPayment"
    assert {"201", "400", "402", "404"} <= set(operation["responses"])
    assert "Idempotency-Key" in {p["name"] for p in operation["parameters"]}
    schemas = document["components"]["schemas"]
    assert {"failure_code", "failure_message"} <= set(schemas["Payment"]["properties"])
    assert "attempts" in schemas["PaymentView"]["properties"]


async def test_a_retry_whose_gateway_call_fails_is_answered_as_it_stands_on_the_same_key(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    """As for a create: the 503 is not stored, the attempt it started is tied to the key,
    and the same key answers with the payment as it now stands, never not-retryable."""
    gateway_down = True

    async def before_charge(order_id: int, amount: Decimal) -> None:
        if gateway_down:
            raise ConnectionError("gateway unreachable")

    async with running(database_url, order_stub, **DECLINING) as svc:
        failed = await declined_payment(svc)
    async with controlled(database_url, order_stub, before_charge) as svc:
        key = {"Idempotency-Key": "retry-1"}
        lost = await retry(svc.client, failed["id"], headers=key)
        gateway_down = False
        again = await retry(svc.client, failed["id"], headers=key)
        without_key = await retry(svc.client, failed["id"])

    assert assert_problem(lost, 503, "gateway-unavailable")["payment_id"] == failed["id"]
    assert again.status_code == 201, again.text
    assert again.json()["status"] == "PROCESSING"  # the reconciler settles it
    assert again.json()["transaction_id"] != failed["transaction_id"]
    assert_problem(without_key, 400, "not-retryable")


async def test_a_retry_while_another_waits_for_the_gateway_is_not_retryable(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    gateway_answers = asyncio.Event()
    charging = asyncio.Event()

    async def before_charge(order_id: int, amount: Decimal) -> None:
        charging.set()
        await gateway_answers.wait()

    async with running(database_url, order_stub, **DECLINING) as svc:
        failed = await declined_payment(svc)
    async with controlled(database_url, order_stub, before_charge) as svc:
        first = asyncio.create_task(retry(svc.client, failed["id"]))
        await charging.wait()
        second = await retry(svc.client, failed["id"])
        gateway_answers.set()
        paid = await first

    problem = assert_problem(second, 400, "not-retryable")
    assert problem["payment_status"] == "PROCESSING"
    assert paid.status_code == 201 and paid.json()["status"] == "COMPLETED"
