"""Idempotency-Key on POST /api/v1/payments/ and /refund, over real HTTP on a real database.

The first answer (status and body) is stored and replayed for the same key and body with
`Idempotent-Replayed: true`; another body is 422; a key whose first request still runs is 409;
keys are per endpoint, expire, and a 5xx is not stored. "Still running" is made real by holding
a row lock in a separate transaction, so the first request waits inside PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.order_stub import OrderServiceStub
from tests.support.problems import assert_problem
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

PAYMENTS = "/api/v1/payments/"
REFUND = "/api/v1/payments/refund"
CREATE_ENDPOINT = "POST /api/v1/payments"
REFUND_ENDPOINT = "POST /api/v1/payments/refund"
REPLAYED = "idempotent-replayed"
DECLINED_AMOUNT = 666

checks: Any = load_test_queries()


# --- helpers ---------------------------------------------------------------------------------


async def create(
    client: httpx.AsyncClient, body: dict[str, Any], key: str | None, path: str = PAYMENTS
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await client.post(path, json=body, headers=headers)


async def refund(
    client: httpx.AsyncClient, body: dict[str, Any], key: str | None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await client.post(REFUND, json=body, headers=headers)


def assert_replay_of(first: httpx.Response, replay: httpx.Response) -> None:
    """`replay` is the stored first answer: same status, content type and bytes, marked."""
    assert replay.headers.get(REPLAYED) == "true", replay.headers
    assert replay.status_code == first.status_code
    assert replay.headers["content-type"] == first.headers["content-type"]
    assert replay.content == first.content


async def count_payments(db: asyncpg.Connection) -> int:
    return int(await checks.count_payments(db))


async def count_outbox(db: asyncpg.Connection) -> int:
    return int(await checks.count_outbox_events(db))


async def count_refunds(db: asyncpg.Connection) -> int:
    return int(await checks.count_refunds(db))


async def stored_key(db: asyncpg.Connection, endpoint: str, key: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await checks.idempotency_key(db, endpoint=endpoint, key=key)
    return row


async def wait_for(check: Any, what: str, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what}: not reached within {within}s")


@asynccontextmanager
async def held_lock(
    database_url: str, lock: Callable[..., Awaitable[Any]], **params: Any
) -> AsyncIterator[None]:
    """A separate session holding a row lock (taken by the query `lock`, e.g.
    `checks.lock_payment`) in a transaction that is rolled back when the block ends."""
    conn = await asyncpg.connect(database_url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        await lock(conn, **params)
        try:
            yield
        finally:
            await transaction.rollback()
    finally:
        await conn.close()


def held_order(database_url: str, order_id: int) -> AbstractAsyncContextManager[None]:
    """An uncommitted payment row of this order: a create of the same order waits on it."""
    return held_lock(
        database_url,
        checks.insert_payment_row,
        order_id=order_id,
        amount=Decimal(1000),
        currency="JPY",
        status="PROCESSING",
    )


async def wait_until_blocked(db: asyncpg.Connection) -> None:
    async def blocked() -> bool:
        return int(await checks.count_sessions_waiting_on_locks(db)) >= 1

    await wait_for(blocked, "the first request waiting on the held lock")


# --- replay of the first answer --------------------------------------------------------------


async def test_a_create_is_replayed_for_the_same_key_and_body_without_a_second_payment(
    service: RunningService, db: asyncpg.Connection
) -> None:
    body = {"order_id": 1, "amount": 1500}

    first = await create(service.client, body, "create-1")
    replays = [await create(service.client, body, "create-1") for _ in range(3)]

    assert first.status_code == 201, first.text
    assert REPLAYED not in first.headers
    for replay in replays:
        assert_replay_of(first, replay)
    assert await count_payments(db) == 1
    assert await count_outbox(db) == 1  # one "completed" event, not one per call
    row = await stored_key(db, CREATE_ENDPOINT, "create-1")
    assert row is not None and row["response_status"] == 201


async def test_the_trailing_slash_does_not_make_another_endpoint(
    service: RunningService, db: asyncpg.Connection
) -> None:
    body = {"order_id": 2, "amount": 1500}

    first = await create(service.client, body, "slash", path="/api/v1/payments/")
    again = await create(service.client, body, "slash", path="/api/v1/payments")

    assert first.status_code == 201, first.text
    assert_replay_of(first, again)
    assert await count_payments(db) == 1


async def test_a_refund_is_replayed_for_the_same_key_and_body_without_a_second_refund(
    service: RunningService, db: asyncpg.Connection
) -> None:
    payment = (await create(service.client, {"order_id": 3, "amount": 2000}, None)).json()
    body = {"payment_id": payment["id"], "reason": "Order cancelled by customer"}

    first = await refund(service.client, body, "refund-1")
    replay = await refund(service.client, body, "refund-1")

    assert first.status_code == 201, first.text
    assert_replay_of(first, replay)
    assert await count_refunds(db) == 1
    events = [row async for row in checks.outbox_events_of_payment(db, payment_id=payment["id"])]
    assert [row["body"].count("refunded") for row in events] == [0, 1]


async def test_a_declined_payment_402_is_stored_and_replayed(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    settings = make_settings(
        database_url, order_stub.url, gateway={"decline_amounts": [DECLINED_AMOUNT]}
    )
    body = {"order_id": 4, "amount": DECLINED_AMOUNT}
    async with serve(settings) as svc:
        first = await create(svc.client, body, "declined")
        replay = await create(svc.client, body, "declined")

    assert_problem(first, 402, "payment-declined")
    assert_replay_of(first, replay)
    assert await count_payments(db) == 1
    assert await count_outbox(db) == 1  # one "failed" event


@pytest.mark.parametrize(
    ("body", "slug"),
    [
        ({"order_id": 5, "amount": 99}, "invalid-payment"),
        ({"order_id": 5, "amount": "100"}, "invalid-request"),
    ],
)
async def test_a_400_is_stored_and_replayed(
    service: RunningService, db: asyncpg.Connection, body: dict[str, Any], slug: str
) -> None:
    first = await create(service.client, body, "bad-request")
    replay = await create(service.client, body, "bad-request")

    assert_problem(first, 400, slug)
    assert_replay_of(first, replay)
    assert await count_payments(db) == 0
    row = await stored_key(db, CREATE_ENDPOINT, "bad-request")
    assert row is not None and row["response_status"] == 400


async def test_a_replayed_duplicate_order_400_stays_the_first_answer(
    service: RunningService, db: asyncpg.Connection
) -> None:
    body = {"order_id": 6, "amount": 1000}
    assert (await create(service.client, body, None)).status_code == 201

    first = await create(service.client, body, "late-retry")
    replay = await create(service.client, body, "late-retry")

    assert_problem(first, 400, "duplicate-order")
    assert_replay_of(first, replay)
    assert await count_payments(db) == 1


# --- the same key with another body ----------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        {"order_id": 8, "amount": 1000},  # another order
        {"order_id": 7, "amount": 1001},  # another amount
    ],
)
async def test_the_same_key_with_another_body_is_422_and_runs_nothing(
    service: RunningService, db: asyncpg.Connection, other: dict[str, Any]
) -> None:
    first = await create(service.client, {"order_id": 7, "amount": 1000}, "reused")

    reused = await create(service.client, other, "reused")

    assert first.status_code == 201, first.text
    assert_problem(reused, 422, "idempotency-key-reused")
    assert REPLAYED not in reused.headers
    assert await count_payments(db) == 1
    assert (await service.client.get("/api/v1/payments/order/8")).status_code == 404


async def test_the_same_key_with_another_refund_body_is_422(
    service: RunningService, db: asyncpg.Connection
) -> None:
    one = (await create(service.client, {"order_id": 9, "amount": 1000}, None)).json()
    two = (await create(service.client, {"order_id": 10, "amount": 1000}, None)).json()
    assert (await refund(service.client, {"payment_id": one["id"], "reason": "r"}, "rk")).is_success

    reused = await refund(service.client, {"payment_id": two["id"], "reason": "r"}, "rk")

    assert_problem(reused, 422, "idempotency-key-reused")
    assert (await service.client.get(f"/api/v1/payments/{two['id']}")).json()["status"] == (
        "COMPLETED"
    )
    assert await count_refunds(db) == 1


# --- the same key while the first request still runs -----------------------------------------


async def test_a_create_with_a_key_still_running_is_409(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    # A generous command timeout: the first request must wait on the lock, not give up.
    settings = make_settings(database_url, order_stub.url, database={"command_timeout": 30.0})
    body = {"order_id": 11, "amount": 1200}
    async with serve(settings) as svc:
        async with held_order(database_url, order_id=11):
            first_task = asyncio.create_task(create(svc.client, body, "slow"))
            await wait_until_blocked(db)
            row = await stored_key(db, CREATE_ENDPOINT, "slow")
            assert row is not None and row["response_status"] is None  # claimed, running

            second = await create(svc.client, body, "slow")

            assert_problem(second, 409, "idempotency-key-in-use")
            assert REPLAYED not in second.headers
            assert not first_task.done()
        first = await first_task  # the held row is rolled back: the first one goes on
        after = await create(svc.client, body, "slow")

    assert first.status_code == 201, first.text
    assert_replay_of(first, after)
    assert await count_payments(db) == 1


async def test_a_refund_with_a_key_still_running_is_409(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    settings = make_settings(database_url, order_stub.url, database={"command_timeout": 30.0})
    async with serve(settings) as svc:
        payment = (await create(svc.client, {"order_id": 12, "amount": 1200}, None)).json()
        body = {"payment_id": payment["id"], "reason": "r"}
        async with held_lock(database_url, checks.lock_payment, payment_id=payment["id"]):
            first_task = asyncio.create_task(refund(svc.client, body, "slow-refund"))
            await wait_until_blocked(db)

            second = await refund(svc.client, body, "slow-refund")

            assert_problem(second, 409, "idempotency-key-in-use")
            assert not first_task.done()
        first = await first_task
        after = await refund(svc.client, body, "slow-refund")

    assert first.status_code == 201, first.text
    assert_replay_of(first, after)
    assert await count_refunds(db) == 1


@pytest.mark.parametrize("endpoint", ["create", "refund"])
async def test_twenty_concurrent_identical_requests_run_once(
    service: RunningService, db: asyncpg.Connection, endpoint: str
) -> None:
    if endpoint == "create":
        body: dict[str, Any] = {"order_id": 13, "amount": 3000}
        path = PAYMENTS
    else:
        payment = (await create(service.client, {"order_id": 13, "amount": 3000}, None)).json()
        body = {"payment_id": payment["id"], "reason": "r"}
        path = REFUND
    events_before = await count_outbox(db)

    responses = await asyncio.gather(
        *(
            service.client.post(path, json=body, headers={"Idempotency-Key": "burst"})
            for _ in range(20)
        )
    )

    ran = [r for r in responses if r.status_code == 201 and REPLAYED not in r.headers]
    replayed = [r for r in responses if r.headers.get(REPLAYED) == "true"]
    in_use = [r for r in responses if r.status_code == 409]
    assert len(ran) == 1, [(r.status_code, r.text) for r in responses]
    assert len(ran) + len(replayed) + len(in_use) == 20, [r.status_code for r in responses]
    for replay in replayed:
        assert_replay_of(ran[0], replay)
    for conflict in in_use:
        assert_problem(conflict, 409, "idempotency-key-in-use")
    assert await count_payments(db) == 1
    assert await count_refunds(db) == (1 if endpoint == "refund" else 0)
    assert await count_outbox(db) == events_before + 1


# --- scope, expiry, what is not stored -------------------------------------------------------


async def test_keys_are_scoped_per_endpoint(
    service: RunningService, db: asyncpg.Connection
) -> None:
    created = await create(service.client, {"order_id": 14, "amount": 1000}, "shared-key")
    refunded = await refund(
        service.client, {"payment_id": created.json()["id"], "reason": "r"}, "shared-key"
    )

    assert created.status_code == 201, created.text
    assert refunded.status_code == 201, refunded.text  # neither 422 nor the create's replay
    assert REPLAYED not in refunded.headers
    assert set(refunded.json()) >= {"payment_id", "reason"}
    assert await stored_key(db, CREATE_ENDPOINT, "shared-key") is not None
    assert await stored_key(db, REFUND_ENDPOINT, "shared-key") is not None


async def test_an_expired_key_is_forgotten_and_the_request_runs_again(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    settings = make_settings(database_url, order_stub.url, idempotency={"ttl_hours": 0.0003})
    async with serve(settings) as svc:
        first = await create(svc.client, {"order_id": 15, "amount": 1000}, "short-lived")
        other = await create(svc.client, {"order_id": 16, "amount": 1000}, "short-lived-2")
        assert first.status_code == 201 and other.status_code == 201

        async def both_expired() -> bool:
            rows = [
                await stored_key(db, CREATE_ENDPOINT, key)
                for key in ("short-lived", "short-lived-2")
            ]
            return all(row is None or row["expired"] for row in rows)

        await wait_for(both_expired, "both keys past their lifetime")

        # The same body again really runs: the order is paid already, so it is a duplicate.
        again = await create(svc.client, {"order_id": 15, "amount": 1000}, "short-lived")
        # Another body under an expired key is a new request, not a reused key.
        new_body = await create(svc.client, {"order_id": 17, "amount": 1000}, "short-lived-2")

    assert_problem(again, 400, "duplicate-order")
    assert REPLAYED not in again.headers
    assert new_body.status_code == 201, new_body.text
    assert REPLAYED not in new_body.headers
    assert await count_payments(db) == 3


async def test_a_5xx_is_not_stored_so_a_retry_runs_again(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    # The first request waits on a held row past the command timeout: a real 503 from the
    # database path. The key must be released, and the retry must run, not replay the 503.
    settings = make_settings(database_url, order_stub.url, database={"command_timeout": 1.0})
    body = {"order_id": 18, "amount": 1000}
    async with serve(settings) as svc:
        async with held_order(database_url, order_id=18):
            failed = await create(svc.client, body, "outage")
            assert_problem(failed, 503)
            assert await stored_key(db, CREATE_ENDPOINT, "outage") is None
        retried = await create(svc.client, body, "outage")
        replayed = await create(svc.client, body, "outage")

    assert REPLAYED not in failed.headers
    assert retried.status_code == 201, retried.text
    assert REPLAYED not in retried.headers
    assert_replay_of(retried, replayed)
    assert await count_payments(db) == 1


# --- key validation and authentication -------------------------------------------------------


async def test_an_invalid_key_is_400_and_runs_nothing(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    for key in ["", '""', "k" * 256, "a\x7fb", "tab\there"]:
        with subtests.test(key=key):
            response = await create(service.client, {"order_id": 19, "amount": 1000}, key)

            assert_problem(response, 400)
            assert await count_payments(db) == 0
            assert int(await checks.count_idempotency_keys(db)) == 0


async def test_a_key_of_255_characters_is_accepted(
    service: RunningService, db: asyncpg.Connection
) -> None:
    key = "k" * 255

    first = await create(service.client, {"order_id": 20, "amount": 1000}, key)
    replay = await create(service.client, {"order_id": 20, "amount": 1000}, key)

    assert first.status_code == 201, first.text
    assert_replay_of(first, replay)


TOKENS = ("token-a", "token-b")


@pytest.fixture
async def authed(database_url: str, order_stub: OrderServiceStub) -> AsyncIterator[RunningService]:
    async with serve(make_settings(database_url, order_stub.url, auth={"tokens": TOKENS})) as svc:
        yield svc


async def test_an_unauthenticated_request_never_claims_a_key(
    authed: RunningService, db: asyncpg.Connection
) -> None:
    refused = await authed.client.post(
        PAYMENTS, json={"order_id": 22, "amount": 1000}, headers={"Idempotency-Key": "K"}
    )
    accepted = await authed.client.post(
        PAYMENTS,
        json={"order_id": 23, "amount": 1000},
        headers={"Idempotency-Key": "K", "Authorization": "Bearer token-a"},
    )

    assert_problem(refused, 401)
    assert accepted.status_code == 201, accepted.text  # not 422: K was never claimed
    assert REPLAYED not in accepted.headers
    assert await count_payments(db) == 1


async def test_a_stored_answer_is_never_replayed_without_a_valid_token(
    authed: RunningService, db: asyncpg.Connection
) -> None:
    body = {"order_id": 24, "amount": 1000}
    first = await authed.client.post(
        PAYMENTS, json=body, headers={"Idempotency-Key": "K2", "Authorization": "Bearer token-a"}
    )

    anonymous = await authed.client.post(PAYMENTS, json=body, headers={"Idempotency-Key": "K2"})
    wrong = await authed.client.post(
        PAYMENTS, json=body, headers={"Idempotency-Key": "K2", "Authorization": "Bearer nope"}
    )
    # Keys are the caller's own (tests/test_idempotency_callers.py): another valid token
    # sending K2 has a K2 of its own, which runs, and meets the order's one payment.
    other_token = await authed.client.post(
        PAYMENTS, json=body, headers={"Idempotency-Key": "K2", "Authorization": "Bearer token-b"}
    )
    same_token = await authed.client.post(
        PAYMENTS, json=body, headers={"Idempotency-Key": "K2", "Authorization": "Bearer token-a"}
    )

    assert first.status_code == 201, first.text
    for response in (anonymous, wrong):
        assert_problem(response, 401)
        assert REPLAYED not in response.headers
        assert str(first.json()["transaction_id"]) not in response.text
    assert_problem(other_token, 400, "duplicate-order")
    assert REPLAYED not in other_token.headers
    assert str(first.json()["transaction_id"]) not in other_token.text
    assert_replay_of(first, same_token)
    assert await count_payments(db) == 1
