"""Payments left PROCESSING are settled by asking the gateway, never left stuck.

The background loop is exercised through the running service; the command
(reconcile_stuck_payments) directly, over a pool and the simulator, where
a test needs to control exactly when it runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from prometheus_client import REGISTRY

from service.commands import ReconcileStuckPayments
from service.commands.reconciliation import reconcile_stuck_payments
from service.db.pool import create_pool
from service.db.sql import load_queries
from service.db.unit_of_work import UnitOfWork
from service.domain.rules import PaymentStatus
from service.gateway import ChargeDecision, ChargeRequest, SimulatedGateway
from service.settings import DatabaseSettings, GatewaySettings
from tests.support.listing import wait_for_status
from tests.support.order_stub import OrderServiceStub
from tests.support.payments import insert_processing as insert_processing_row
from tests.support.payments import payment_in
from tests.support.service import serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

sql: Any = load_queries()
checks: Any = load_test_queries()

FAST_RECONCILER = {
    "charge_timeout_seconds": 0.1,
    "reconcile_after_seconds": 0.2,
    "reconcile_interval_seconds": 0.1,
}
DECLINED = 4040


@asynccontextmanager
async def unit_of_work(database_url: str) -> AsyncIterator[UnitOfWork]:
    """A unit of work over a pool of its own on the test's database, as a process has."""
    pool = await create_pool(database_url, DatabaseSettings(pool_min_size=1, pool_max_size=4))
    try:
        yield UnitOfWork(pool, load_queries())
    finally:
        await pool.close()


@pytest.fixture
async def uow(database_url: str) -> AsyncIterator[UnitOfWork]:
    async with unit_of_work(database_url) as unit:
        yield unit


# --- helpers ---------------------------------------------------------------------------------


async def insert_processing(
    db: asyncpg.Connection, order_id: int, amount: int = 5000, *, aged_seconds: float = 0
) -> dict[str, Any]:
    """A payment as left by a crash between the two steps of create."""
    row = await insert_processing_row(db, order_id, Decimal(amount))
    if aged_seconds:
        await checks.age_payment(db, payment_id=row["id"], seconds=aged_seconds)
    return dict(row)


async def outbox_bodies(db: asyncpg.Connection, payment_id: int) -> list[dict[str, Any]]:
    return [
        json.loads(row["body"])
        async for row in checks.outbox_events_of_payment(db, payment_id=payment_id)
    ]


def settlement_body(status: str, transaction_id: UUID | str) -> dict[str, str]:
    return {"payment_status": status, "transaction_id": str(transaction_id)}


async def stored_status(db: asyncpg.Connection, payment_id: int) -> str:
    status: str = await checks.payment_status(db, payment_id=payment_id)
    return status


def command(
    older_than_seconds: float = 60.0,
    max_payments: int = 100,
    *,
    lease_seconds: float = 60.0,
    manual_review_after_seconds: float = 86400.0,
) -> ReconcileStuckPayments:
    return ReconcileStuckPayments(
        older_than_seconds=older_than_seconds,
        lease_seconds=lease_seconds,
        manual_review_after_seconds=manual_review_after_seconds,
        max_payments=max_payments,
    )


def simulator(**settings: Any) -> SimulatedGateway:
    return SimulatedGateway(GatewaySettings(**settings))


class ScriptedGateway:
    """Answers status() from a table by order id (raising for an exception), after
    `delay` seconds (so that concurrent reconcilers overlap)."""

    resend_window_seconds = None

    def __init__(
        self,
        answers: dict[int, ChargeDecision | Exception],
        default: ChargeDecision = ChargeDecision.APPROVED,
        delay: float = 0.0,
    ) -> None:
        self.answers = answers
        self.default = default
        self.delay = delay
        self.asked: list[int] = []

    async def charge(self, request: ChargeRequest) -> ChargeDecision:
        raise AssertionError("the reconciler never charges")

    async def charge_status(self, request: ChargeRequest) -> ChargeDecision:
        self.asked.append(request.order_id)
        await asyncio.sleep(self.delay)
        answer = self.answers.get(request.order_id, self.default)
        if isinstance(answer, Exception):
            raise answer
        return answer


# --- the background reconciler of the running service ----------------------------------------


@pytest.mark.parametrize(
    ("amount", "status", "body_status"),
    [(5000, "COMPLETED", "completed"), (DECLINED, "FAILED", "failed")],
)
async def test_the_service_settles_a_payment_no_callback_settled(
    database_url: str,
    order_stub: OrderServiceStub,
    db: asyncpg.Connection,
    amount: int,
    status: str,
    body_status: str,
) -> None:
    gateway = {"mode": "async", "decline_amounts": [DECLINED], **FAST_RECONCILER}
    async with serve(make_settings(database_url, order_stub.url, gateway=gateway)) as svc:
        created = await svc.client.post("/api/v1/payments/", json={"order_id": 1, "amount": amount})
        assert created.status_code == 201, created.text
        payment = created.json()
        assert payment["status"] == "PROCESSING"

        await wait_for_status(svc.client, payment["id"], status, within=10.0)

    assert await outbox_bodies(db, payment["id"]) == [
        settlement_body(body_status, payment["transaction_id"])
    ]


async def test_the_service_settles_a_payment_left_processing_by_a_crash(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    stuck = await insert_processing(db, order_id=11, aged_seconds=120)
    recent = await insert_processing(db, order_id=12)
    gateway = {"reconcile_after_seconds": 60.0, "reconcile_interval_seconds": 0.1}

    async with serve(make_settings(database_url, order_stub.url, gateway=gateway)) as svc:
        await wait_for_status(svc.client, stuck["id"], "COMPLETED", within=10.0)

    assert await outbox_bodies(db, stuck["id"]) == [
        settlement_body("completed", stuck["transaction_id"])
    ]
    # Younger than reconcile_after_seconds: create may still be asking the gateway.
    assert await stored_status(db, recent["id"]) == "PROCESSING"
    assert await outbox_bodies(db, recent["id"]) == []


async def test_two_services_reconciling_one_database_settle_once(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    settings = make_settings(
        database_url, order_stub.url, gateway={"mode": "async", **FAST_RECONCILER}
    )
    async with serve(settings) as first, serve(settings) as second:
        created = await first.client.post("/api/v1/payments/", json={"order_id": 5, "amount": 700})
        assert created.status_code == 201, created.text
        payment = created.json()
        await wait_for_status(second.client, payment["id"], "COMPLETED", within=10.0)

    assert await outbox_bodies(db, payment["id"]) == [
        settlement_body("completed", payment["transaction_id"])
    ]


# --- the command, run when the test says ------------------------------------------------------


async def test_a_payment_younger_than_the_age_is_left_alone(
    uow: UnitOfWork, db: asyncpg.Connection
) -> None:
    payment = await insert_processing(db, order_id=1, aged_seconds=30)

    settled = await reconcile_stuck_payments(command(older_than_seconds=60), uow, simulator())

    assert settled == []
    assert await stored_status(db, payment["id"]) == "PROCESSING"
    assert await outbox_bodies(db, payment["id"]) == []


@pytest.mark.parametrize(
    ("decline_amounts", "status", "body_status"),
    [((), "COMPLETED", "completed"), ((5000,), "FAILED", "failed")],
    ids=["approved", "declined"],
)
async def test_a_payment_older_than_the_age_is_settled_as_the_gateway_says(
    uow: UnitOfWork,
    db: asyncpg.Connection,
    decline_amounts: tuple[int, ...],
    status: str,
    body_status: str,
) -> None:
    payment = await insert_processing(db, order_id=1, amount=5000, aged_seconds=90)

    settled = await reconcile_stuck_payments(
        command(older_than_seconds=60), uow, simulator(decline_amounts=decline_amounts)
    )

    assert [(p.id, p.status) for p in settled] == [(payment["id"], status)]
    assert await stored_status(db, payment["id"]) == status
    assert await outbox_bodies(db, payment["id"]) == [
        settlement_body(body_status, payment["transaction_id"])
    ]


async def test_settled_payments_are_not_touched(uow: UnitOfWork, db: asyncpg.Connection) -> None:
    settled_statuses = [
        PaymentStatus.COMPLETED,
        PaymentStatus.FAILED,
        PaymentStatus.REFUNDED,
    ]
    for order_id, status in enumerate(settled_statuses, start=1):
        payment_id = await payment_in(db, order_id, status)
        await checks.age_payment(db, payment_id=payment_id, seconds=3600)

    settled = await reconcile_stuck_payments(command(older_than_seconds=60), uow, simulator())

    assert settled == []


async def test_a_payment_whose_buyer_never_authenticated_is_cancelled_after_the_timeout(
    uow: UnitOfWork, db: asyncpg.Connection
) -> None:
    waiting = await payment_in(db, 1, PaymentStatus.PENDING)
    await checks.age_payment(db, payment_id=waiting, seconds=3000)
    abandoned = await payment_in(db, 2, PaymentStatus.PENDING)
    await checks.age_payment(db, payment_id=abandoned, seconds=3700)
    timeout = ReconcileStuckPayments(
        older_than_seconds=60,
        lease_seconds=60,
        manual_review_after_seconds=86400,
        authentication_timeout_seconds=3600,
    )

    settled = await reconcile_stuck_payments(timeout, uow, simulator())

    assert [(p.id, p.status, p.failure_code) for p in settled] == [
        (abandoned, PaymentStatus.FAILED, "authentication_required")
    ]
    assert await stored_status(db, waiting) == "PENDING"
    [failed] = await outbox_bodies(db, abandoned)
    assert failed["payment_status"] == "failed"
    assert await outbox_bodies(db, waiting) == []


async def test_running_the_reconciler_twice_settles_once(
    uow: UnitOfWork, db: asyncpg.Connection
) -> None:
    payment = await insert_processing(db, order_id=1, aged_seconds=90)

    first = await reconcile_stuck_payments(command(), uow, simulator())
    second = await reconcile_stuck_payments(command(), uow, simulator())

    assert [p.id for p in first] == [payment["id"]]
    assert second == []
    assert len(await outbox_bodies(db, payment["id"])) == 1


@pytest.fixture
async def second_uow(database_url: str) -> AsyncIterator[UnitOfWork]:
    """Another process's unit of work: its own pool on the same database."""
    async with unit_of_work(database_url) as unit:
        yield unit


async def test_two_reconcilers_racing_ask_about_each_stuck_payment_once(
    uow: UnitOfWork, second_uow: UnitOfWork, db: asyncpg.Connection
) -> None:
    orders = range(1, 21)
    for order_id in orders:
        await insert_processing(db, order_id=order_id, aged_seconds=90)
    # Still pending for half of them: those too are asked once per lease, not once per round.
    gateway = ScriptedGateway(dict.fromkeys(range(1, 11), ChargeDecision.PROCESSING), delay=0.01)

    settled_per_round = []
    for _ in range(2):
        results = await asyncio.gather(
            *(reconcile_stuck_payments(command(), unit, gateway) for unit in (uow, second_uow))
        )
        settled_per_round.append(sum(len(settled) for settled in results))

    assert settled_per_round == [10, 0]

    assert sorted(gateway.asked) == list(orders)
    assert await checks.count_processing_payments(db) == 10
    for order_id in range(11, 21):
        payment_id = await checks.payment_id_of_order(db, order_id=order_id)
        assert len(await outbox_bodies(db, payment_id)) == 1

    # Once the lease is over, the pending ones are asked about again, once.
    await asyncio.sleep(0.6)
    await asyncio.gather(
        *(
            reconcile_stuck_payments(command(lease_seconds=0.5), u, gateway)
            for u in (uow, second_uow)
        )
    )
    assert sorted(gateway.asked) == sorted([*orders, *range(1, 11)])


async def test_a_gateway_error_for_one_payment_does_not_stop_the_others(
    uow: UnitOfWork, db: asyncpg.Connection
) -> None:
    failing = await insert_processing(db, order_id=1, aged_seconds=300)
    pending = await insert_processing(db, order_id=2, aged_seconds=200)
    healthy = await insert_processing(db, order_id=3, aged_seconds=100)
    gateway = ScriptedGateway({1: ConnectionError("gateway down"), 2: ChargeDecision.PROCESSING})

    settled = await reconcile_stuck_payments(command(), uow, gateway)

    assert [p.id for p in settled] == [healthy["id"]]
    assert sorted(gateway.asked) == [1, 2, 3]
    assert await stored_status(db, failing["id"]) == "PROCESSING"
    assert await stored_status(db, pending["id"]) == "PROCESSING"
    assert await stored_status(db, healthy["id"]) == "COMPLETED"


async def test_payments_the_gateway_cannot_settle_yet_do_not_starve_the_others(
    uow: UnitOfWork, db: asyncpg.Connection
) -> None:
    """A full batch of payments the gateway still reports pending must not hide the rest.

    The contract: a payment left PROCESSING past the age is reconciled, never left stuck.
    """
    for order_id in (1, 2):
        await insert_processing(db, order_id=order_id, aged_seconds=300 - order_id)
    newest = await insert_processing(db, order_id=3, aged_seconds=100)
    gateway = ScriptedGateway({1: ChargeDecision.PROCESSING, 2: ChargeDecision.PROCESSING})

    for _ in range(3):
        await reconcile_stuck_payments(command(max_payments=2), uow, gateway)

    assert await stored_status(db, newest["id"]) == "COMPLETED"


async def test_a_payment_the_gateway_keeps_pending_is_flagged_once_for_manual_review(
    uow: UnitOfWork, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """Flagged (view, gauge, one log line), never failed without the gateway's word."""
    overdue = await insert_processing(db, order_id=1, aged_seconds=7200)
    young = await insert_processing(db, order_id=2, aged_seconds=120)
    gateway = ScriptedGateway({}, default=ChargeDecision.PROCESSING)
    review = command(lease_seconds=0.3, manual_review_after_seconds=3600)

    for _ in range(2):
        await reconcile_stuck_payments(review, uow, gateway)
        await asyncio.sleep(0.35)  # the lease ends: the next round asks again

    assert sorted(gateway.asked) == [1, 1, 2, 2]
    assert [await stored_status(db, p["id"]) for p in (overdue, young)] == ["PROCESSING"] * 2
    flagged = [row["payment_id"] async for row in sql.ops_payments_for_manual_review(db)]
    assert flagged == [overdue["id"]]
    assert REGISTRY.get_sample_value("payments_manual_review") == 1
    lines = [r for r in caplog.records if "manual review" in r.getMessage()]
    assert [getattr(r, "payment_id", None) for r in lines] == [overdue["id"]]

    # The gateway decides at last: settled as usual, and off the list.
    gateway.default = ChargeDecision.APPROVED
    await reconcile_stuck_payments(review, uow, gateway)
    assert await stored_status(db, overdue["id"]) == "COMPLETED"
    assert [row async for row in sql.ops_payments_for_manual_review(db)] == []
    assert REGISTRY.get_sample_value("payments_manual_review") == 0
