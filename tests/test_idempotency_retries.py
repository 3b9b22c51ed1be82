"""Retrying with an Idempotency-Key after the first attempt made its payment, and keys
taken over after their lock expired, over real HTTP on a real database.

Stripe's rule: a retry with the same key gets the outcome of the same payment as it now
stands (201 COMPLETED or PROCESSING, 402 FAILED), never "duplicate order" for the order
the first attempt paid. The gateway is the simulator behind a wrapper that lets a test
make it fail, hold a row lock (the database failing the request mid-way), or wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from service.commands import CreatePayment
from service.db.codecs import prepare_connection
from service.db.session import KeyClaim, NewPayment, Session
from service.db.sql import load_queries
from service.domain.model import Yen
from service.domain.rules import PaymentStatus
from service.gateway import ChargeDecision, ChargeRequest, Gateway
from tests.support.gateways import GatewayAround, wrap_api_gateway
from tests.support.order_stub import OrderServiceStub
from tests.support.payments import settle
from tests.support.problems import PROBLEMS, assert_problem
from tests.support.relay_helpers import wait_until
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

PAYMENTS = "/api/v1/payments/"
BATCH = "/api/v1/payments/batch"
CREATE_ENDPOINT = "POST /api/v1/payments"
REPLAYED = "idempotent-replayed"
DECLINED_AMOUNT = 666

checks: Any = load_test_queries()

# What the wrapped gateway does before the simulator decides: given (order_id, amount).
BeforeCharge = Callable[[int, Decimal], Awaitable[None]]


class ControlledGateway(GatewayAround):
    """The simulator, with `before_charge` run first (it may raise, wait, or lock rows)."""

    def __init__(self, inner: Gateway, before_charge: BeforeCharge) -> None:
        super().__init__(inner)
        self._before_charge = before_charge

    async def charge(self, request: ChargeRequest) -> ChargeDecision:
        await self._before_charge(request.order_id, request.amount)
        return await self._inner.charge(request)


@asynccontextmanager
async def controlled(
    database_url: str, order_stub: OrderServiceStub, before_charge: BeforeCharge, **sections: Any
) -> AsyncIterator[RunningService]:
    async with serve(make_settings(database_url, order_stub.url, **sections)) as svc:
        wrap_api_gateway(svc, lambda inner: ControlledGateway(inner, before_charge))
        yield svc


async def create(client: httpx.AsyncClient, body: dict[str, Any], key: str) -> httpx.Response:
    return await client.post(PAYMENTS, json=body, headers={"Idempotency-Key": key})


async def stored_key(db: asyncpg.Connection, key: str, endpoint: str = CREATE_ENDPOINT) -> Any:
    return await checks.idempotency_key(db, endpoint=endpoint, key=key)


class RowLocks:
    """Row locks on payments held by another session, as a stalled database would: the
    service's statements on those rows wait past its command timeout and answer 503."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._sessions: list[tuple[asyncpg.Connection, Any]] = []

    async def lock_order(self, order_id: int) -> None:
        conn = await asyncpg.connect(self._url)
        transaction = conn.transaction()
        await transaction.start()
        payment_id = await checks.payment_id_of_order(conn, order_id=order_id)
        await checks.lock_payment(conn, payment_id=payment_id)
        self._sessions.append((conn, transaction))

    async def release(self) -> None:
        for conn, transaction in self._sessions:
            await transaction.rollback()
            await conn.close()
        self._sessions.clear()


async def nothing(order_id: int, amount: Decimal) -> None:
    return None


# --- a single create's retry after a 5xx -----------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "settled", "answer"),
    [
        (1000, None, 201),  # still PROCESSING: nobody settled it yet
        (1000, "COMPLETED", 201),  # the reconciler settled it: the gateway had approved
        (DECLINED_AMOUNT, "FAILED", 402),  # the reconciler settled it: declined
    ],
    ids=["processing", "completed", "failed"],
)
async def test_a_retry_after_the_gateway_failed_answers_with_the_payment_it_created(
    database_url: str,
    order_stub: OrderServiceStub,
    db: asyncpg.Connection,
    amount: int,
    settled: str | None,
    answer: int,
) -> None:
    gateway_down = True

    async def before_charge(order_id: int, amount: Decimal) -> None:
        if gateway_down:
            raise ConnectionError("gateway unreachable")

    reconciler = (
        {
            "reconcile_after_seconds": 0.3,
            "reconcile_interval_seconds": 0.1,
            "charge_timeout_seconds": 0.2,
        }
        if settled
        else {"reconcile_after_seconds": 3600.0}
    )
    body = {"order_id": 1, "amount": amount}
    async with controlled(
        database_url,
        order_stub,
        before_charge,
        gateway={**reconciler, "decline_amounts": [DECLINED_AMOUNT]},
    ) as svc:
        failed = await create(svc.client, body, "k1")
        payment_id = assert_problem(failed, 503, "gateway-unavailable")["payment_id"]
        if settled:

            async def reconciled() -> bool:
                status = await checks.payment_status(db, payment_id=payment_id)
                return bool(status == settled)

            await wait_until(reconciled, what=f"the reconciler settling it {settled}")
        gateway_down = False  # a retry that ran again would pay nothing: the order has one
        retried = await create(svc.client, body, "k1")
        replayed = await create(svc.client, body, "k1")

    if answer == 201:
        assert retried.status_code == 201, retried.text
        assert retried.json()["id"] == payment_id
        assert retried.json()["status"] == (settled or "PROCESSING")
    else:
        problem = assert_problem(retried, 402, "payment-declined")
        assert problem["payment_id"] == payment_id
    assert replayed.headers.get(REPLAYED) == "true"
    assert (replayed.status_code, replayed.content) == (retried.status_code, retried.content)
    assert int(await checks.count_payments(db)) == 1
    row = await stored_key(db, "k1")
    assert list(row["payment_ids"]) == [payment_id]


async def test_a_retry_after_the_database_failed_mid_way_answers_with_the_payment(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    # After the PROCESSING row committed, the settling UPDATE waits on a row lock past
    # the command timeout: a real 503 from the database path, with the payment made.
    locks = RowLocks(database_url)

    async def before_charge(order_id: int, amount: Decimal) -> None:
        await locks.lock_order(order_id)

    body = {"order_id": 2, "amount": 1500}
    async with controlled(
        database_url, order_stub, before_charge, database={"command_timeout": 1.0}
    ) as svc:
        try:
            failed = await create(svc.client, body, "k2")
        finally:
            await locks.release()
        assert_problem(failed, 503, "database-unavailable")
        row = await stored_key(db, "k2")
        assert row is not None and row["response_status"] is None
        assert row["locked_until"] is None  # let go for the retry, but not forgotten

        retried = await create(svc.client, body, "k2")

    assert retried.status_code == 201, retried.text
    payment = retried.json()
    assert payment["order_id"] == 2 and payment["status"] == "PROCESSING"
    assert list(row["payment_ids"]) == [payment["id"]]
    assert int(await checks.count_payments(db)) == 1


# --- a batch's retry after a 5xx -------------------------------------------------------------


async def test_a_batch_retry_after_a_5xx_answers_its_own_items_with_their_payments(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    """The batch's key covers every payment the batch created: its retry answers those
    items with their payments as they stand, as if the first attempt had answered; the
    other items answer as they would now (here the same 400s as the first time)."""
    locks = RowLocks(database_url)

    async def before_charge(order_id: int, amount: Decimal) -> None:
        if order_id == 11:
            await locks.lock_order(order_id)

    entries: list[Any] = [
        {"order_id": 10, "amount": 1000},
        {"order_id": 11, "amount": 2000},
        {"order_id": 12, "amount": 99},  # breaks the amount rule: 400
        {"order_id": 13, "amount": 1000},  # paid before the batch: 400 duplicate-order
        {"order_id": 10, "amount": 1000},  # twice in the batch: 400 duplicate-order
    ]
    headers = {"Idempotency-Key": "batch-1"}
    async with controlled(
        database_url, order_stub, before_charge, database={"command_timeout": 1.0}
    ) as svc:
        paid_before = await svc.client.post(PAYMENTS, json={"order_id": 13, "amount": 1000})
        assert paid_before.status_code == 201, paid_before.text
        try:
            failed = await svc.client.post(BATCH, json={"payments": entries}, headers=headers)
        finally:
            await locks.release()
        assert_problem(failed, 503, "database-unavailable")
        created = [await checks.payment_id_of_order(db, order_id=n) for n in (10, 11)]

        retried = await svc.client.post(BATCH, json={"payments": entries}, headers=headers)
        replayed = await svc.client.post(BATCH, json={"payments": entries}, headers=headers)

    assert retried.status_code == 200, retried.text
    results = retried.json()["results"]
    assert [r["status"] for r in results] == [201, 201, 400, 400, 400]
    assert [r["payment"]["id"] for r in results[:2]] == created
    # Neither was settled: the one statement that settles them both failed.
    assert [r["payment"]["status"] for r in results[:2]] == ["PROCESSING", "PROCESSING"]
    assert [r["problem"]["type"] for r in results[2:]] == [
        PROBLEMS + "invalid-payment",
        PROBLEMS + "duplicate-order",
        PROBLEMS + "duplicate-order",
    ]
    assert replayed.headers.get(REPLAYED) == "true" and replayed.content == retried.content
    assert int(await checks.count_payments(db)) == 3
    row = await stored_key(db, "batch-1", endpoint="POST /api/v1/payments/batch")
    assert sorted(row["payment_ids"]) == sorted(created)


# --- a key taken over after its lock expired -------------------------------------------------


async def test_a_request_whose_key_was_taken_over_does_not_overwrite_the_new_answer(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    """A's lock expires while its gateway call hangs; B (same key and body) takes the key
    over and answers with A's payment; A answers its own client later, but the key keeps
    B's answer: the one a third retry is replayed."""
    charging = asyncio.Event()
    gateway_answers = asyncio.Event()

    async def before_charge(order_id: int, amount: Decimal) -> None:
        charging.set()
        await gateway_answers.wait()

    body = {"order_id": 20, "amount": 1000}
    async with controlled(
        database_url, order_stub, before_charge, idempotency={"lock_seconds": 0.3}
    ) as svc:
        first = asyncio.create_task(create(svc.client, body, "k3"))
        await asyncio.wait_for(charging.wait(), 15)

        async def lock_over() -> bool:
            row = await stored_key(db, "k3")
            return bool(row["lock_over"])

        await wait_until(lock_over, what="the first request's lock expired")
        takeover = await create(svc.client, body, "k3")
        assert not first.done()
        gateway_answers.set()
        late = await first
        replayed = await create(svc.client, body, "k3")

    payment_id = await checks.payment_id_of_order(db, order_id=20)
    # B answered with A's payment as it stood, not with "duplicate order".
    assert takeover.status_code == 201, takeover.text
    assert REPLAYED not in takeover.headers
    assert takeover.json()["id"] == payment_id
    assert takeover.json()["status"] == "PROCESSING"
    # A finished the payment and told its own client so.
    assert late.status_code == 201, late.text
    assert late.json()["status"] == "COMPLETED"
    # The key kept B's answer: A's late one was not stored over it.
    assert replayed.headers.get(REPLAYED) == "true"
    assert (replayed.status_code, replayed.content) == (takeover.status_code, takeover.content)
    assert int(await checks.count_payments(db)) == 1


@pytest.mark.parametrize("first_answer", [201, 503], ids=["answered", "failed"])
async def test_a_request_whose_key_was_taken_over_cannot_settle_it_first(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection, first_answer: int
) -> None:
    """The other order of the same race: A answers while B, which took its key over, is
    still running. A must neither store its answer (201) nor let the key go (503): either
    would leave B, the holder, unable to store its own."""
    charging = asyncio.Event()
    gateway_answers = asyncio.Event()

    async def before_charge(order_id: int, amount: Decimal) -> None:
        charging.set()
        await gateway_answers.wait()
        if first_answer == 503:
            raise ConnectionError("gateway unreachable")

    body = {"order_id": 21, "amount": 1000}
    # An asynchronous gateway: after its charge, A touches only its key, not the payment.
    sections: dict[str, Any] = {
        "idempotency": {"lock_seconds": 0.3},
        "gateway": {"mode": "async", "reconcile_after_seconds": 3600.0},
    }
    async with controlled(database_url, order_stub, before_charge, **sections) as svc:
        first = asyncio.create_task(create(svc.client, body, "k4"))
        await asyncio.wait_for(charging.wait(), 15)
        payment_id = await checks.payment_id_of_order(db, order_id=21)

        async def lock_over() -> bool:
            return bool((await stored_key(db, "k4"))["lock_over"])

        await wait_until(lock_over, what="the first request's lock expired")
        blocker = await asyncpg.connect(database_url)
        try:
            transaction = blocker.transaction()
            await transaction.start()
            # B takes the key over, then waits to read A's payment.
            await checks.lock_payments_table(blocker)
            takeover_task = asyncio.create_task(create(svc.client, body, "k4"))

            async def waiting() -> bool:
                return int(await checks.count_sessions_waiting_on_locks(db)) >= 1

            await wait_until(waiting, what="the second request waiting on the payments table")
            gateway_answers.set()
            late = await first  # A answers while B still runs
            # A callback settles the payment meanwhile: B's answer differs from A's.
            await settle(
                blocker,
                payment_id,
                await checks.payment_transaction_id(blocker, payment_id=payment_id),
                PaymentStatus.COMPLETED,
                request_id="a-callback",
            )
            await transaction.commit()
        finally:
            await blocker.close()
        takeover = await takeover_task
        replayed = await create(svc.client, body, "k4")

    assert late.status_code == first_answer, late.text
    if first_answer == 201:
        assert late.json()["status"] == "PROCESSING"
    assert takeover.status_code == 201, takeover.text
    assert takeover.json()["id"] == payment_id
    assert takeover.json()["status"] == "COMPLETED"
    # The key holds B's answer, the holder's, not A's.
    assert replayed.headers.get(REPLAYED) == "true"
    assert replayed.content == takeover.content


# --- the key learns of its payments in the statement that creates them ------------------------


async def claimed(db: asyncpg.Connection, key: str) -> KeyClaim:
    """The claim a request takes on `key` before its handler runs."""
    claim = await Session(db, load_queries()).claim_key(
        "", CREATE_ENDPOINT, key, b"body", token=uuid4(), ttl_seconds=60, lock_seconds=60
    )
    assert claim is not None
    return claim


async def tied_to(db: asyncpg.Connection, key: str) -> list[int]:
    return list(
        (await checks.idempotency_key(db, endpoint=CREATE_ENDPOINT, key=key))["payment_ids"]
    )


async def test_the_statement_that_creates_payments_records_them_on_their_key(
    db: asyncpg.Connection,
) -> None:
    # No later statement to be lost to a crash: once a payment exists, its key knows it.
    await prepare_connection(db)  # as the service's connections are
    single, batch, stale = [await claimed(db, key) for key in ("single", "batch", "stale")]
    taken_over = stale._replace(token=uuid4())  # the claim of an attempt whose lock ran out
    created = await Session(db, load_queries()).insert_processing_many(
        [
            NewPayment(CreatePayment(1, Yen(1000)), single),
            NewPayment(CreatePayment(2, Yen(1000)), batch),
            NewPayment(CreatePayment(3, Yen(1000)), batch),
            NewPayment(CreatePayment(4, Yen(1000))),
            NewPayment(CreatePayment(1, Yen(2000)), stale),  # the order is paid: not created
            NewPayment(CreatePayment(5, Yen(1000)), taken_over),
        ]
    )
    payments = [charge.payment for charge in created]
    ids = {payment.order_id: payment.id for payment in payments}

    assert sorted(ids) == [1, 2, 3, 4, 5]
    assert [payment.amount for payment in payments if payment.order_id == 1] == [1000]
    assert await tied_to(db, "single") == [ids[1]]
    assert await tied_to(db, "batch") == [ids[2], ids[3]]
    assert await tied_to(db, "stale") == []


async def test_the_statement_that_retries_a_payment_records_it_on_the_key(
    db: asyncpg.Connection,
) -> None:
    await prepare_connection(db)  # as the service's connections are
    [charge] = await Session(db, load_queries()).insert_processing_many(
        [NewPayment(CreatePayment(7, Yen(1000)))]
    )
    payment = charge.payment
    await settle(db, payment.id, payment.transaction_id, PaymentStatus.FAILED)
    key = await claimed(db, "retry")

    retried = await Session(db, load_queries()).start_retry(payment.id, None, key)

    assert retried is not None and retried.payment.status == PaymentStatus.PROCESSING
    assert await tied_to(db, "retry") == [payment.id]
