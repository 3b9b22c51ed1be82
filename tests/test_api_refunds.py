"""POST /api/v1/payments/refund over real HTTP on a real PostgreSQL (full refunds only)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from service.db.session import Session
from service.db.sql import load_queries
from service.gateway import Gateway, RefundDecision, RefundOutcome, RefundRequest
from tests.support.gateways import GatewayAround, wrap_api_gateway
from tests.support.listing import get_payment, wait_for_status
from tests.support.order_stub import OrderServiceStub
from tests.support.problems import assert_problem
from tests.support.relay_helpers import wait_until
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()

PAYMENTS = "/api/v1/payments/"
REFUND = "/api/v1/payments/refund"
JSON_HEADERS = {"content-type": "application/json"}
REASON = "Order cancelled by customer"
AMOUNT = 5000
DECLINED_AMOUNT = 666
# The resource, and why the gateway refused it (null unless FAILED: CONTRACT.md, refunds).
REFUND_FIELDS = {
    "id",
    "payment_id",
    "amount",
    "reason",
    "status",
    "created_at",
    "failure_code",
    "failure_message",
}


# --- helpers ---------------------------------------------------------------------------------


def running(
    database_url: str, order_stub: OrderServiceStub, **sections: dict[str, Any]
) -> AbstractAsyncContextManager[RunningService]:
    return serve(make_settings(database_url, order_stub.url, **sections))


async def create_payment(
    client: httpx.AsyncClient, order_id: int = 1, amount: int = AMOUNT
) -> dict[str, Any]:
    response = await client.post(PAYMENTS, json={"order_id": order_id, "amount": amount})
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


async def refund(
    client: httpx.AsyncClient, payment_id: Any, reason: Any = REASON, **extra: Any
) -> httpx.Response:
    return await client.post(REFUND, json={"payment_id": payment_id, "reason": reason, **extra})


async def webhook_statuses(db: asyncpg.Connection, payment_id: int) -> list[str]:
    rows = [row async for row in checks.outbox_events_of_payment(db, payment_id=payment_id)]
    return [json.loads(row["body"])["payment_status"] for row in rows]


async def refund_count(db: asyncpg.Connection, payment_id: int) -> int:
    count: int = await checks.count_refunds_of_payment(db, payment_id=payment_id)
    return count


async def assert_untouched(
    client: httpx.AsyncClient, db: asyncpg.Connection, payment: dict[str, Any], status: str
) -> None:
    """A refused refund changed nothing: same status, no refund, no `refunded` webhook."""
    stored = await get_payment(client, payment["id"])
    assert stored["status"] == status
    assert stored["refunds"] == []
    assert await refund_count(db, payment["id"]) == 0
    assert "refunded" not in await webhook_statuses(db, payment["id"])


def same_instant(a: str, b: str) -> bool:
    return datetime.fromisoformat(a) == datetime.fromisoformat(b)


# --- the full refund -------------------------------------------------------------------------


async def test_a_full_refund_of_a_completed_payment_is_201_and_marks_it_refunded(
    service: RunningService, db: asyncpg.Connection
) -> None:
    payment = await create_payment(service.client, order_id=1, amount=89800)

    response = await refund(service.client, payment["id"])

    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == REFUND_FIELDS
    assert isinstance(created["id"], int)
    assert created["payment_id"] == payment["id"]
    assert isinstance(created["amount"], int | float) and not isinstance(created["amount"], bool)
    assert created["amount"] == payment["amount"] == 89800
    assert created["reason"] == REASON
    assert isinstance(created["status"], str) and created["status"]
    assert datetime.fromisoformat(created["created_at"]).tzinfo is not None

    stored = await get_payment(service.client, payment["id"])
    assert stored["status"] == "REFUNDED"
    (listed,) = stored["refunds"]
    assert set(listed) == REFUND_FIELDS
    assert {k: v for k, v in listed.items() if k != "created_at"} == {
        k: v for k, v in created.items() if k != "created_at"
    }
    assert same_instant(listed["created_at"], created["created_at"])

    (row,) = [r async for r in checks.refunds_of_payment(db, payment_id=payment["id"])]
    assert row["amount"] == Decimal(89800)
    assert row["reason"] == REASON


async def test_the_refund_queues_a_refunded_webhook_after_the_completed_one(
    service: RunningService, db: asyncpg.Connection
) -> None:
    payment = await create_payment(service.client)

    assert (await refund(service.client, payment["id"])).status_code == 201

    rows = [row async for row in checks.outbox_events_of_payment(db, payment_id=payment["id"])]
    assert [json.loads(row["body"]) for row in rows] == [
        {"payment_status": "completed", "transaction_id": payment["transaction_id"]},
        {"payment_status": "refunded", "transaction_id": payment["transaction_id"]},
    ]
    assert rows[0]["seq"] < rows[1]["seq"]
    assert all(row["order_id"] == payment["order_id"] for row in rows)


@pytest.mark.parametrize("amount", [AMOUNT, float(AMOUNT)])
async def test_an_amount_equal_to_the_payments_is_accepted(
    service: RunningService, amount: int | float
) -> None:
    payment = await create_payment(service.client)

    response = await refund(service.client, payment["id"], amount=amount)

    assert response.status_code == 201, response.text
    assert response.json()["amount"] == AMOUNT
    assert (await get_payment(service.client, payment["id"]))["status"] == "REFUNDED"


GOOD_REASONS = {
    "one": "r",
    "500-ascii": "a" * 500,
    "500-accented": "é" * 500,
    "500-astral": "😀" * 500,
    "japanese": "返金: お客様都合",
}


async def test_a_reason_of_1_to_500_characters_is_accepted_and_kept(
    service: RunningService, subtests: pytest.Subtests
) -> None:
    for order_id, (case, reason) in enumerate(GOOD_REASONS.items(), start=1):
        with subtests.test(case):
            payment = await create_payment(service.client, order_id=order_id)

            response = await refund(service.client, payment["id"], reason=reason)

            assert response.status_code == 201, response.text
            assert response.json()["reason"] == reason
            stored = await get_payment(service.client, payment["id"])
            assert stored["refunds"][0]["reason"] == reason


# --- refused refunds -------------------------------------------------------------------------


async def test_a_refund_of_an_unknown_payment_is_404(
    service: RunningService, subtests: pytest.Subtests
) -> None:
    for payment_id in [12345, 2**63 - 1]:
        with subtests.test(payment_id=payment_id):
            assert_problem(await refund(service.client, payment_id), 404)


async def test_a_refund_of_a_failed_payment_is_400(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    async with running(
        database_url, order_stub, gateway={"decline_amounts": [DECLINED_AMOUNT]}
    ) as svc:
        declined = await svc.client.post(PAYMENTS, json={"order_id": 1, "amount": DECLINED_AMOUNT})
        payment = await get_payment(svc.client, assert_problem(declined, 402)["payment_id"])

        assert_problem(await refund(svc.client, payment["id"]), 400)

        await assert_untouched(svc.client, db, payment, "FAILED")


async def test_a_refund_of_a_processing_payment_is_400(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    gateway = {"mode": "async", "reconcile_after_seconds": 3600.0}
    async with running(database_url, order_stub, gateway=gateway) as svc:
        payment = await create_payment(svc.client)
        assert payment["status"] == "PROCESSING"

        assert_problem(await refund(svc.client, payment["id"]), 400)

        await assert_untouched(svc.client, db, payment, "PROCESSING")


async def test_a_second_refund_is_400_and_leaves_the_first(
    service: RunningService, db: asyncpg.Connection
) -> None:
    payment = await create_payment(service.client)
    first = await refund(service.client, payment["id"])
    assert first.status_code == 201, first.text

    again = await refund(service.client, payment["id"], reason="again")

    assert_problem(again, 400)
    stored = await get_payment(service.client, payment["id"])
    assert stored["status"] == "REFUNDED"
    assert [r["id"] for r in stored["refunds"]] == [first.json()["id"]]
    assert await refund_count(db, payment["id"]) == 1
    assert await webhook_statuses(db, payment["id"]) == ["completed", "refunded"]


async def test_an_amount_other_than_the_payments_is_400_and_refunds_nothing(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    payment = await create_payment(service.client)

    for amount in ["4999", "5001", "5000.5", "4999.999", "100", "0", "-5000", "1e300", str(10**30)]:
        with subtests.test(amount=amount):
            body = f'{{"payment_id": {payment["id"]}, "reason": "r", "amount": {amount}}}'

            response = await service.client.post(REFUND, content=body, headers=JSON_HEADERS)

            assert_problem(response, 400)
            await assert_untouched(service.client, db, payment, "COMPLETED")


async def test_an_amount_that_is_not_a_json_number_is_400(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    payment = await create_payment(service.client)

    for amount in ['"5000"', "true", "[5000]", "1e400"]:
        with subtests.test(amount=amount):
            body = f'{{"payment_id": {payment["id"]}, "reason": "r", "amount": {amount}}}'

            response = await service.client.post(REFUND, content=body, headers=JSON_HEADERS)

            assert_problem(response, 400)
            await assert_untouched(service.client, db, payment, "COMPLETED")


BAD_REASONS: list[tuple[str, dict[str, Any]]] = [
    ("missing", {}),
    ("empty", {"reason": ""}),
    ("blank", {"reason": "   \t\n"}),
    ("501-chars", {"reason": "a" * 501}),
    ("501-astral", {"reason": "😀" * 501}),
    ("nul", {"reason": "cancelled\u0000"}),
    ("only-nul", {"reason": "\u0000"}),
    ("null", {"reason": None}),
    ("number", {"reason": 1}),
    ("list", {"reason": ["cancelled"]}),
]


async def test_a_missing_empty_long_or_unstorable_reason_is_400(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    payment = await create_payment(service.client)

    for case, fields in BAD_REASONS:
        with subtests.test(case):
            response = await service.client.post(
                REFUND, json={"payment_id": payment["id"], **fields}
            )

            assert_problem(response, 400)
            await assert_untouched(service.client, db, payment, "COMPLETED")


async def test_a_payment_id_that_is_not_a_positive_bigint_is_400(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    payment = await create_payment(service.client)  # id 1: a "1"/1.0 must not reach it

    for literal in ["0", "-1", str(2**63), str(10**30), '"1"', "1.5", "1.0", "true", "null", "[1]"]:
        with subtests.test(literal=literal):
            body = f'{{"payment_id": {literal}, "reason": "r"}}'

            response = await service.client.post(REFUND, content=body, headers=JSON_HEADERS)

            assert_problem(response, 400)
            await assert_untouched(service.client, db, payment, "COMPLETED")


async def test_a_body_that_is_not_a_refund_request_is_400(
    service: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    payment = await create_payment(service.client)

    for body in [
        b"",
        b"[]",
        b"null",
        b'{"reason": "r"}',
        b'{"payment_id": 1, "reason": "r",',
        b'{"payment_id": 1, "reason": "r", "refund_all": true}',
        b'{"payment_id": 1, "reason": "r", "currency": "JPY"}',
        b'{"payment_id": 1, "reason": "cancelled \xc3\x28"}',
    ]:
        with subtests.test(body=body):
            response = await service.client.post(REFUND, content=body, headers=JSON_HEADERS)

            assert_problem(response, 400)
            await assert_untouched(service.client, db, payment, "COMPLETED")


# --- concurrency -----------------------------------------------------------------------------


async def test_twenty_concurrent_refunds_of_one_payment_refund_it_exactly_once(
    service: RunningService, db: asyncpg.Connection
) -> None:
    payment_id = (await create_payment(service.client, order_id=500))["id"]

    responses = await asyncio.gather(
        *(refund(service.client, payment_id, reason=f"attempt {n}") for n in range(20))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [400] * 19, [r.text for r in responses]
    for response in responses:
        if response.status_code == 400:
            assert_problem(response, 400)
    (winner,) = [r.json() for r in responses if r.status_code == 201]
    assert await refund_count(db, payment_id) == 1
    assert await webhook_statuses(db, payment_id) == ["completed", "refunded"]
    stored = await get_payment(service.client, payment_id)
    assert stored["status"] == "REFUNDED"
    assert [r["id"] for r in stored["refunds"]] == [winner["id"]]


class RefundsWhenLetGo(GatewayAround):
    """The simulator's refund, once the test lets it go."""

    def __init__(self, inner: Gateway) -> None:
        super().__init__(inner)
        self.asked = asyncio.Event()
        self.go = asyncio.Event()

    async def refund(self, request: RefundRequest) -> RefundDecision:
        self.asked.set()
        await self.go.wait()
        decision: RefundDecision = await self._inner.refund(request)
        return decision


async def test_a_refund_settled_while_another_is_being_started_waits_for_it_not_a_deadlock(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    """Starting a refund holds the payment, then meets the refund PENDING in the index;
    settling that refund takes the payment before changing the refund, so it waits for
    the start to end instead of each waiting for the other (deadlock: one of them a 500)."""
    async with running(database_url, order_stub) as svc:
        gateway = wrap_api_gateway(svc, RefundsWhenLetGo)
        payment_id = (await create_payment(svc.client, order_id=600))["id"]
        first = asyncio.create_task(refund(svc.client, payment_id))
        async with asyncio.timeout(10):
            await gateway.asked.wait()
        async with db.transaction():
            await checks.lock_payment(db, payment_id=payment_id)
            gateway.go.set()  # the first refund is settled now: it waits for the payment
            await wait_until(waiting_on_a_lock(db), 10.0, "the settle waiting for the payment")
            second = await Session(db, load_queries()).start_refund(
                payment_id, None, "started meanwhile", None
            )
        answer = await first

    assert second is None  # the first refund was still PENDING: this one did not start
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "COMPLETED"
    assert await refund_count(db, payment_id) == 1
    assert await webhook_statuses(db, payment_id) == ["completed", "refunded"]


def waiting_on_a_lock(db: asyncpg.Connection) -> Callable[[], Awaitable[bool]]:
    async def waiting() -> bool:
        return bool(await checks.count_sessions_waiting_on_locks(db) == 1)

    return waiting


# --- the gateway's word on a refund ----------------------------------------------------------

REFUSED_AMOUNT = 4321
# The reconciler asks about refunds left PENDING half a second old, every tenth of one.
FAST_RECONCILER = {
    "charge_timeout_seconds": 0.25,
    "reconcile_after_seconds": 0.5,
    "reconcile_interval_seconds": 0.1,
}


class RefundsLater(GatewayAround):
    """The simulator, except that a refund is accepted for later (PENDING), as a gateway
    that settles refunds in the background answers. Asked again (the reconciler's
    refund_status), the simulator's answer: refunded."""

    async def refund(self, request: RefundRequest) -> RefundDecision:
        return RefundDecision(RefundOutcome.PENDING, f"re_later_{request.refund_id}")


class RefundsUnanswered(GatewayAround):
    """The simulator, except that a refund gets no answer, as in a gateway outage."""

    async def refund(self, request: RefundRequest) -> RefundDecision:
        raise ConnectionError("gateway unreachable")


async def refund_statuses(client: httpx.AsyncClient, payment_id: int) -> list[str]:
    return [r["status"] for r in (await get_payment(client, payment_id))["refunds"]]


async def test_a_refund_the_gateway_refuses_is_402_failed_and_the_payment_stays_completed(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    refusing = {"refuse_refund_amounts": [REFUSED_AMOUNT]}
    async with running(database_url, order_stub, gateway=refusing) as svc:
        payment = await create_payment(svc.client, order_id=1, amount=REFUSED_AMOUNT)
        problem = assert_problem(await refund(svc.client, payment["id"]), 402, "refund-failed")
        stored = await get_payment(svc.client, payment["id"])

    assert problem["payment_id"] == payment["id"]
    assert problem["failure_code"] == "refund_failed"
    assert stored["status"] == "COMPLETED"
    [failed] = stored["refunds"]
    assert set(failed) == REFUND_FIELDS
    assert (failed["id"], failed["status"], failed["failure_code"]) == (
        problem["refund_id"],
        "FAILED",
        "refund_failed",
    )
    assert failed["failure_message"] == problem["failure_message"] != ""
    assert await webhook_statuses(db, payment["id"]) == ["completed"]

    # The payment may be refunded again: here the gateway no longer refuses.
    async with running(database_url, order_stub) as svc:
        again = await refund(svc.client, payment["id"])
        assert again.status_code == 201, again.text
        assert await refund_statuses(svc.client, payment["id"]) == ["FAILED", "COMPLETED"]
        assert (await get_payment(svc.client, payment["id"]))["status"] == "REFUNDED"
    assert await webhook_statuses(db, payment["id"]) == ["completed", "refunded"]


async def test_a_refund_the_gateway_decides_later_is_202_pending_then_settled(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    async with running(database_url, order_stub, gateway=FAST_RECONCILER) as svc:
        wrap_api_gateway(svc, RefundsLater)
        payment = await create_payment(svc.client, order_id=1)

        response = await refund(svc.client, payment["id"])
        while_pending = await get_payment(svc.client, payment["id"])
        second = await refund(svc.client, payment["id"], reason="again")

        await wait_for_status(
            svc.client, payment["id"], "REFUNDED", "the reconciler settling the PENDING refund"
        )
        settled = await get_payment(svc.client, payment["id"])

    assert response.status_code == 202, response.text
    pending = response.json()
    assert (pending["status"], pending["failure_code"]) == ("PENDING", None)
    assert while_pending["status"] == "COMPLETED"
    assert [r["status"] for r in while_pending["refunds"]] == ["PENDING"]
    refused = assert_problem(second, 400, "not-refundable")
    assert refused["refund_id"] == pending["id"]
    assert [(r["id"], r["status"]) for r in settled["refunds"]] == [(pending["id"], "COMPLETED")]
    assert await webhook_statuses(db, payment["id"]) == ["completed", "refunded"]


async def test_a_refund_the_gateway_does_not_answer_is_503_pending_then_reconciled(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    async with running(database_url, order_stub, gateway=FAST_RECONCILER) as svc:
        wrap_api_gateway(svc, RefundsUnanswered)
        payment = await create_payment(svc.client, order_id=1)

        problem = assert_problem(
            await refund(svc.client, payment["id"]), 503, "gateway-unavailable"
        )
        left = await refund_statuses(svc.client, payment["id"])

        await wait_for_status(
            svc.client, payment["id"], "REFUNDED", "the reconciler settling the unanswered refund"
        )
        settled = await get_payment(svc.client, payment["id"])

    assert problem["payment_id"] == payment["id"]
    assert left == ["PENDING"]
    assert [(r["id"], r["status"]) for r in settled["refunds"]] == [
        (problem["refund_id"], "COMPLETED")
    ]
    assert await webhook_statuses(db, payment["id"]) == ["completed", "refunded"]
