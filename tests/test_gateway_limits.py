"""A gateway that does not answer: every call of the running service is cut off at
`[gateway] charge_timeout_seconds` and counts as "gateway unavailable".

The simulator is made to hang by patching its methods: the gateway is the outside
world here; the database stays real.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from service.gateway import ChargeDecision, ChargeRequest, SimulatedGateway
from tests.support.order_stub import OrderServiceStub
from tests.support.payments import insert_processing
from tests.support.problems import assert_problem
from tests.support.service import serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()
TIMEOUT = 0.3
# Well above the timeout, well below a hang.
ANSWER_WITHIN = 5.0
# A hang, bounded so that a service without the time limit still stops after the test.
HANG_SECONDS = 10.0


async def hang(*_: object) -> ChargeDecision:
    await asyncio.sleep(HANG_SECONDS)
    return ChargeDecision.APPROVED


async def test_a_charge_the_gateway_does_not_answer_is_a_quick_503_and_stays_processing(
    database_url: str,
    order_stub: OrderServiceStub,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(SimulatedGateway, "charge", hang)
    gateway = {"charge_timeout_seconds": TIMEOUT, "reconcile_after_seconds": 3600.0}
    async with serve(make_settings(database_url, order_stub.url, gateway=gateway)) as svc:
        started = time.monotonic()
        answer = await svc.client.post(
            "/api/v1/payments/", json={"order_id": 1, "amount": 1000}, timeout=ANSWER_WITHIN
        )
        took = time.monotonic() - started

    assert_problem(answer, 503, "gateway-unavailable")
    assert TIMEOUT <= took < ANSWER_WITHIN
    payment_id = await checks.payment_id_of_order(db, order_id=1)
    assert await checks.payment_status(db, payment_id=payment_id) == "PROCESSING"


async def test_a_status_question_the_gateway_does_not_answer_does_not_hold_up_the_reconciler(
    database_url: str,
    order_stub: OrderServiceStub,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first status question hangs; the other stuck payment is still settled."""
    asked: list[int] = []

    async def first_hangs(self: SimulatedGateway, request: ChargeRequest) -> ChargeDecision:
        asked.append(request.order_id)
        if len(asked) == 1:
            await hang()
        return ChargeDecision.APPROVED

    monkeypatch.setattr(SimulatedGateway, "charge_status", first_hangs)
    for order_id in (1, 2):
        row = await insert_processing(db, order_id)
        await checks.age_payment(db, payment_id=row["id"], seconds=120)
    # One round at start-up, the next one long after the test.
    gateway = {
        "charge_timeout_seconds": TIMEOUT,
        "reconcile_after_seconds": 60.0,
        "reconcile_interval_seconds": 600.0,
    }
    async with serve(make_settings(database_url, order_stub.url, gateway=gateway)):
        deadline = time.monotonic() + ANSWER_WITHIN
        while await checks.count_processing_payments(db) == 2:
            assert time.monotonic() < deadline, "the reconciler is stuck on a hanging question"
            await asyncio.sleep(0.05)

    statuses = {
        o: await checks.payment_status(
            db, payment_id=await checks.payment_id_of_order(db, order_id=o)
        )
        for o in (1, 2)
    }
    hung, answered = asked
    assert statuses == {hung: "PROCESSING", answered: "COMPLETED"}
