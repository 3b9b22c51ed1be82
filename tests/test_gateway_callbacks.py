"""Signed gateway callbacks over real HTTP: POST /api/v1/payments/webhook.

The service runs with the simulator in async mode, so a new payment stays
PROCESSING until a callback (or the reconciler, set far away here) settles it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from service.signing import secret_key
from tests.support.callbacks import signed_headers
from tests.support.order_stub import OrderServiceStub
from tests.support.problems import assert_problem
from tests.support.service import RunningService, serve
from tests.support.settings import GATEWAY_SECRET, make_settings
from tests.support.sql import load_test_queries
from tests.test_observability import grew, scrape

checks: Any = load_test_queries()

WEBHOOK = "/api/v1/payments/webhook"
KEY = secret_key(GATEWAY_SECRET)
OTHER_KEY = secret_key("whsec_" + "b3RoZXItc2VjcmV0LW9mLXRoZS1nYXRld2F5")
ASYNC_GATEWAY = {"mode": "async", "reconcile_after_seconds": 3600.0}


@pytest.fixture
async def svc(database_url: str, order_stub: OrderServiceStub) -> AsyncIterator[RunningService]:
    async with serve(make_settings(database_url, order_stub.url, gateway=ASYNC_GATEWAY)) as running:
        yield running


# --- helpers ---------------------------------------------------------------------------------


def callback_body(transaction_id: str, status: str) -> bytes:
    return json.dumps({"transaction_id": transaction_id, "status": status}).encode()


async def post_callback(
    client: httpx.AsyncClient,
    transaction_id: str,
    status: str,
    *,
    webhook_id: str | None = None,
) -> httpx.Response:
    body = callback_body(transaction_id, status)
    return await client.post(
        WEBHOOK, content=body, headers=signed_headers(body, webhook_id=webhook_id)
    )


async def create_processing_payment(
    client: httpx.AsyncClient, order_id: int = 1, amount: int = 5000
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/payments/", json={"order_id": order_id, "amount": amount, "currency": "JPY"}
    )
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    assert payment["status"] == "PROCESSING"
    return payment


async def outbox_bodies(db: asyncpg.Connection, payment_id: int) -> list[dict[str, Any]]:
    return [
        json.loads(row["body"])
        async for row in checks.outbox_events_of_payment(db, payment_id=payment_id)
    ]


async def status_of(client: httpx.AsyncClient, payment_id: int) -> str:
    response = await client.get(f"/api/v1/payments/{payment_id}")
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


# --- legal settlements -----------------------------------------------------------------------


@pytest.mark.parametrize(("reported", "stored"), [("completed", "COMPLETED"), ("failed", "FAILED")])
async def test_a_signed_callback_settles_a_processing_payment(
    svc: RunningService, db: asyncpg.Connection, reported: str, stored: str
) -> None:
    payment = await create_processing_payment(svc.client)
    assert await outbox_bodies(db, payment["id"]) == []

    response = await post_callback(svc.client, payment["transaction_id"], reported)

    assert response.status_code == 200, response.text
    assert response.json() == {"payment_id": payment["id"], "status": stored}
    assert await status_of(svc.client, payment["id"]) == stored
    assert await outbox_bodies(db, payment["id"]) == [
        {"payment_status": reported, "transaction_id": payment["transaction_id"]}
    ]


# --- signatures ------------------------------------------------------------------------------


def bad_signature(body: bytes) -> dict[str, str]:
    return signed_headers(body, key=OTHER_KEY)


def tampered_body(body: bytes) -> dict[str, str]:
    return signed_headers(body.replace(b"completed", b"failed"))


def tampered_id(body: bytes) -> dict[str, str]:
    return {**signed_headers(body), "webhook-id": "msg_someone_else"}


def stale(body: bytes) -> dict[str, str]:
    return signed_headers(body, timestamp=int(time.time()) - 360)


def future(body: bytes) -> dict[str, str]:
    return signed_headers(body, timestamp=int(time.time()) + 360)


def without(header: str):  # type: ignore[no-untyped-def]
    def headers(body: bytes) -> dict[str, str]:
        return {k: v for k, v in signed_headers(body).items() if k != header}

    headers.__name__ = f"without_{header}"
    return headers


def no_headers(body: bytes) -> dict[str, str]:
    return {"content-type": "application/json"}


REFUSED_SIGNATURES = [
    bad_signature,
    tampered_body,
    tampered_id,
    stale,
    future,
    without("webhook-id"),
    without("webhook-timestamp"),
    without("webhook-signature"),
    no_headers,
]


async def test_a_callback_without_a_valid_fresh_signature_is_401(
    svc: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    payment = await create_processing_payment(svc.client)

    for make_headers in REFUSED_SIGNATURES:
        with subtests.test(make_headers.__name__):
            body = callback_body(payment["transaction_id"], "completed")

            response = await svc.client.post(WEBHOOK, content=body, headers=make_headers(body))

            assert_problem(response, 401)
            assert await status_of(svc.client, payment["id"]) == "PROCESSING"
            assert await outbox_bodies(db, payment["id"]) == []


async def test_without_a_gateway_secret_every_callback_is_401(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    settings = make_settings(
        database_url, order_stub.url, gateway={**ASYNC_GATEWAY, "callback_secret": ""}
    )
    async with serve(settings) as running:
        payment = await create_processing_payment(running.client)
        body = callback_body(payment["transaction_id"], "completed")
        for headers in (signed_headers(body), signed_headers(body, key=b""), no_headers(body)):
            response = await running.client.post(WEBHOOK, content=body, headers=headers)
            assert_problem(response, 401)
        assert await status_of(running.client, payment["id"]) == "PROCESSING"
    assert await outbox_bodies(db, payment["id"]) == []


# --- idempotency and no-ops ------------------------------------------------------------------


async def test_the_same_webhook_id_twice_is_processed_once(
    svc: RunningService, db: asyncpg.Connection
) -> None:
    payment = await create_processing_payment(svc.client)
    body = callback_body(payment["transaction_id"], "completed")
    headers = signed_headers(body, webhook_id="msg_repeat")

    first = await svc.client.post(WEBHOOK, content=body, headers=headers)
    second = await svc.client.post(WEBHOOK, content=body, headers=headers)

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert second.json() == {"payment_id": payment["id"], "status": "COMPLETED"}
    assert len(await outbox_bodies(db, payment["id"])) == 1
    tx = uuid.UUID(payment["transaction_id"])
    assert await checks.count_gateway_events_of_transaction(db, transaction_id=tx) == 1


async def test_a_repeated_webhook_id_is_not_processed_again_even_with_another_status(
    svc: RunningService, db: asyncpg.Connection
) -> None:
    payment = await create_processing_payment(svc.client)
    first = await post_callback(svc.client, payment["transaction_id"], "completed", webhook_id="m1")
    again = await post_callback(svc.client, payment["transaction_id"], "failed", webhook_id="m1")

    assert first.status_code == 200, first.text
    assert again.status_code == 200, again.text
    assert await status_of(svc.client, payment["id"]) == "COMPLETED"
    assert len(await outbox_bodies(db, payment["id"])) == 1


async def test_concurrent_deliveries_of_one_callback_settle_once(
    svc: RunningService, db: asyncpg.Connection
) -> None:
    payment = await create_processing_payment(svc.client)
    body = callback_body(payment["transaction_id"], "completed")
    headers = signed_headers(body, webhook_id="msg_burst")

    responses = await asyncio.gather(
        *(svc.client.post(WEBHOOK, content=body, headers=headers) for _ in range(10))
    )

    assert [r.status_code for r in responses] == [200] * 10
    assert await outbox_bodies(db, payment["id"]) == [
        {"payment_status": "completed", "transaction_id": payment["transaction_id"]}
    ]


async def test_reporting_the_status_the_payment_has_is_a_no_op(
    svc: RunningService, db: asyncpg.Connection
) -> None:
    payment = await create_processing_payment(svc.client)
    first = await post_callback(svc.client, payment["transaction_id"], "completed")
    assert first.status_code == 200, first.text

    again = await post_callback(svc.client, payment["transaction_id"], "completed")

    assert again.status_code == 200, again.text
    assert again.json() == {"payment_id": payment["id"], "status": "COMPLETED"}
    assert len(await outbox_bodies(db, payment["id"])) == 1


async def test_a_callback_matching_a_sync_settlement_is_a_no_op(
    service: RunningService, db: asyncpg.Connection
) -> None:
    created = await service.client.post("/api/v1/payments/", json={"order_id": 3, "amount": 1000})
    assert created.status_code == 201, created.text
    payment = created.json()
    assert payment["status"] == "COMPLETED"

    response = await post_callback(service.client, payment["transaction_id"], "completed")

    assert response.status_code == 200, response.text
    assert len(await outbox_bodies(db, payment["id"])) == 1


# --- illegal changes, unknown payments, malformed bodies --------------------------------------


@pytest.mark.parametrize(("first", "then"), [("completed", "failed"), ("failed", "completed")])
async def test_an_illegal_change_is_409(
    svc: RunningService, db: asyncpg.Connection, first: str, then: str
) -> None:
    payment = await create_processing_payment(svc.client)
    settled = await post_callback(svc.client, payment["transaction_id"], first)
    assert settled.status_code == 200, settled.text

    response = await post_callback(svc.client, payment["transaction_id"], then)

    assert_problem(response, 409)
    assert await status_of(svc.client, payment["id"]) == first.upper()
    assert await outbox_bodies(db, payment["id"]) == [
        {"payment_status": first, "transaction_id": payment["transaction_id"]}
    ]


async def test_a_refunded_payment_cannot_be_moved_by_the_gateway(
    svc: RunningService, db: asyncpg.Connection
) -> None:
    payment = await create_processing_payment(svc.client)
    assert (await post_callback(svc.client, payment["transaction_id"], "completed")).is_success
    refund = await svc.client.post(
        "/api/v1/payments/refund", json={"payment_id": payment["id"], "reason": "cancelled"}
    )
    assert refund.status_code == 201, refund.text

    response = await post_callback(svc.client, payment["transaction_id"], "failed")

    assert_problem(response, 409)
    assert await status_of(svc.client, payment["id"]) == "REFUNDED"
    assert len(await outbox_bodies(db, payment["id"])) == 2


async def test_completed_for_a_payment_refunded_since_is_a_200_no_op_failed_is_409(
    svc: RunningService, db: asyncpg.Connection
) -> None:
    """The gateway redelivering "completed" after the refund would retry a 409 for days.
    A superseded attempt ended FAILED, so "completed" for it stays 409, REFUNDED or not."""
    payment = await create_processing_payment(svc.client)
    declined = payment["transaction_id"]
    assert (await post_callback(svc.client, declined, "failed")).status_code == 200
    retried = await svc.client.post(f"/api/v1/payments/{payment['id']}/retry")
    assert retried.status_code == 201, retried.text
    charged = retried.json()["transaction_id"]
    assert (await post_callback(svc.client, charged, "completed")).status_code == 200
    refund = await svc.client.post(
        "/api/v1/payments/refund", json={"payment_id": payment["id"], "reason": "cancelled"}
    )
    assert refund.status_code == 201, refund.text
    before = await scrape(svc.client)

    completed = await post_callback(svc.client, charged, "completed")
    failed = await post_callback(svc.client, charged, "failed")
    superseded_completed = await post_callback(svc.client, declined, "completed")
    superseded_failed = await post_callback(svc.client, declined, "failed")

    after = await scrape(svc.client)
    assert completed.status_code == 200, completed.text
    assert completed.json() == {"payment_id": payment["id"], "status": "REFUNDED"}
    assert assert_problem(failed, 409, "transition-not-allowed")["current_status"] == "REFUNDED"
    problem = assert_problem(superseded_completed, 409, "transition-not-allowed")
    assert "superseded by a retry" in problem["detail"]
    assert superseded_failed.status_code == 200, superseded_failed.text
    assert await status_of(svc.client, payment["id"]) == "REFUNDED"
    assert [body["payment_status"] for body in await outbox_bodies(db, payment["id"])] == [
        "failed",
        "completed",
        "refunded",
    ]
    assert grew(before, after, 'payments_gateway_callbacks_total{outcome="unchanged"}') == 2
    assert grew(before, after, 'payments_gateway_callbacks_total{outcome="applied"}') == 0


async def test_concurrent_opposite_reports_settle_once(
    svc: RunningService, db: asyncpg.Connection
) -> None:
    payment = await create_processing_payment(svc.client)
    tx = payment["transaction_id"]

    completed, failed = await asyncio.gather(
        post_callback(svc.client, tx, "completed"), post_callback(svc.client, tx, "failed")
    )

    assert sorted([completed.status_code, failed.status_code]) == [200, 409]
    winner = "completed" if completed.status_code == 200 else "failed"
    assert await status_of(svc.client, payment["id"]) == winner.upper()
    assert await outbox_bodies(db, payment["id"]) == [
        {"payment_status": winner, "transaction_id": tx}
    ]


async def test_an_unknown_transaction_id_is_404(svc: RunningService) -> None:
    await create_processing_payment(svc.client)
    response = await post_callback(svc.client, str(uuid.uuid4()), "completed")
    assert_problem(response, 404)


async def test_a_well_signed_malformed_callback_is_400(
    svc: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    payment = await create_processing_payment(svc.client)

    for body in [
        b"{not json",
        b"",
        b"[]",
        b'{"status": "completed"}',
        b'{"transaction_id": "TX", "status": "weird"}',
        b'{"transaction_id": "TX", "status": "COMPLETED"}',
        b'{"transaction_id": "TX", "status": "refunded"}',
        b'{"transaction_id": "TX"}',
        b'{"transaction_id": "not-a-uuid", "status": "completed"}',
        b'{"transaction_id": 12345, "status": "completed"}',
    ]:
        with subtests.test(body=body):
            body = body.replace(b"TX", payment["transaction_id"].encode())

            response = await svc.client.post(WEBHOOK, content=body, headers=signed_headers(body))

            assert_problem(response, 400)
            assert await status_of(svc.client, payment["id"]) == "PROCESSING"
            assert await outbox_bodies(db, payment["id"]) == []
