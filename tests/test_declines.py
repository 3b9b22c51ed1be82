"""Why a payment failed: the failure code and message of a FAILED payment, from the
simulator's decline rule, a gateway callback or the reconciler, shown wherever the
payment is (CONTRACT.md, "Declines, and paying a declined order again")."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
import pytest

from service.commands.reconciliation import reconcile_stuck_payments
from service.db.migrate import migration_files
from service.db.pool import create_pool
from service.db.sql import load_queries
from service.db.unit_of_work import UnitOfWork
from service.domain.failures import FAILURE_MESSAGES, GENERIC_DECLINE, failure_message
from service.gateway import ChargeOutcome, ChargeRequest, SimulatedGateway
from service.settings import DatabaseSettings, GatewaySettings
from tests.support.callbacks import signed_headers
from tests.support.listing import listed
from tests.support.order_stub import OrderServiceStub
from tests.support.payments import insert_processing
from tests.support.postgres import TestPostgres
from tests.support.problems import assert_problem
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries
from tests.test_reconciler import command

checks: Any = load_test_queries()
sql: Any = load_queries()

PAYMENTS = "/api/v1/payments/"
GENERIC = 666  # in decline_amounts: declined without a code of its own
CODES = {"5001": "insufficient_funds", "5002": "expired_card", "5003": "processing_error"}
DECLINES = {"decline_amounts": [GENERIC], "decline_codes": CODES}


@pytest.fixture
async def declining(
    database_url: str, order_stub: OrderServiceStub
) -> AsyncIterator[RunningService]:
    async with serve(make_settings(database_url, order_stub.url, gateway=DECLINES)) as running:
        yield running


async def declined(svc: RunningService, order_id: int, amount: int) -> dict[str, Any]:
    response = await svc.client.post(PAYMENTS, json={"order_id": order_id, "amount": amount})
    return assert_problem(response, 402, "payment-declined")


def test_every_known_failure_code_has_a_message_and_an_unknown_one_a_generic_message() -> None:
    assert GENERIC_DECLINE in FAILURE_MESSAGES
    assert all(message.endswith(".") for message in FAILURE_MESSAGES.values())
    assert failure_message("do_not_honor_7") == "The payment gateway declined the payment."


@pytest.mark.parametrize(
    "decline_codes",
    [
        {"5000.5": "card_declined"},
        {"-1": "card_declined"},
        {"5000": "Card Declined!"},
        {"\u00b2": "card_declined"},
        {"\u0661\u0660\u0660": "card_declined"},
    ],
    ids=["not-whole-yen", "negative", "not-a-code", "superscript-digit", "arabic-digits"],
)
def test_a_decline_rule_that_is_not_an_amount_and_a_code_is_refused(
    decline_codes: dict[str, str],
) -> None:
    with pytest.raises(msgspec.ValidationError, match="decline_codes"):
        msgspec.convert({"decline_codes": decline_codes}, GatewaySettings)


async def test_the_simulator_declines_each_configured_amount_with_its_code() -> None:
    gateway = SimulatedGateway(msgspec.convert(DECLINES, GatewaySettings))
    answers = {
        a: await gateway.charge_status(ChargeRequest(uuid.uuid4(), 1, 1, Decimal(a)))
        for a in (GENERIC, 5001, 5003, 5004)
    }
    assert {a: (d.outcome, d.failure_code) for a, d in answers.items()} == {
        GENERIC: (ChargeOutcome.DECLINED, None),
        5001: (ChargeOutcome.DECLINED, "insufficient_funds"),
        5003: (ChargeOutcome.DECLINED, "processing_error"),
        5004: (ChargeOutcome.APPROVED, None),
    }


async def test_a_decline_s_402_problem_names_the_payment_its_code_and_message(
    declining: RunningService,
) -> None:
    for order_id, (amount, code) in enumerate({**CODES, str(GENERIC): GENERIC_DECLINE}.items()):
        problem = await declined(declining, order_id + 1, int(amount))

        assert isinstance(problem["payment_id"], int)
        assert problem["failure_code"] == code
        assert problem["failure_message"] == failure_message(code)


async def test_a_failed_payment_shows_its_failure_by_id_by_order_and_in_the_list(
    declining: RunningService,
) -> None:
    problem = await declined(declining, 7, 5001)
    client = declining.client

    by_id = (await client.get(f"{PAYMENTS}{problem['payment_id']}")).json()
    by_order = (await client.get(f"{PAYMENTS}order/7")).json()
    (failed,) = await listed(client, 1, status="FAILED")

    assert by_id == by_order == failed
    assert (by_id["status"], by_id["failure_code"]) == ("FAILED", "insufficient_funds")
    assert by_id["failure_message"] == failure_message("insufficient_funds")
    assert by_id["attempts"] == [
        {
            "transaction_id": by_id["transaction_id"],
            "status": "FAILED",
            "failure_code": "insufficient_funds",
            "created_at": by_id["created_at"],
        }
    ]


async def test_an_approved_payment_has_null_failure_fields_everywhere(
    declining: RunningService,
) -> None:
    response = await declining.client.post(PAYMENTS, json={"order_id": 8, "amount": 5004})
    created = response.json()
    read = (await declining.client.get(f"{PAYMENTS}{created['id']}")).json()
    (in_the_list,) = await listed(declining.client, 1)

    for payment in (created, read, in_the_list):
        assert (payment["failure_code"], payment["failure_message"]) == (None, None)
    assert read["attempts"][0]["failure_code"] is None


async def test_a_batch_s_declined_item_carries_the_single_call_s_problem_and_payment(
    declining: RunningService,
) -> None:
    body = {"payments": [{"order_id": 21, "amount": 5002}, {"order_id": 22, "amount": 5004}]}
    response = await declining.client.post(f"{PAYMENTS}batch", json=body)
    declined_item, approved_item = response.json()["results"]
    single = await declined(declining, 23, 5002)

    payment = declined_item["payment"]
    assert declined_item["status"] == 402
    assert declined_item["problem"] == {**single, "payment_id": payment["id"]}
    assert (payment["failure_code"], payment["failure_message"]) == (
        "expired_card",
        failure_message("expired_card"),
    )
    assert approved_item["payment"]["failure_code"] is None


async def test_a_callback_that_says_only_failed_stores_the_generic_decline(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    settings = make_settings(database_url, order_stub.url, gateway={"mode": "async"})
    async with serve(settings) as svc:
        created = (await svc.client.post(PAYMENTS, json={"order_id": 1, "amount": 5000})).json()
        body = json.dumps({"transaction_id": created["transaction_id"], "status": "failed"})
        answer = await svc.client.post(
            f"{PAYMENTS}webhook", content=body, headers=signed_headers(body.encode())
        )
        assert answer.status_code == 200, answer.text
        payment = (await svc.client.get(f"{PAYMENTS}{created['id']}")).json()

    assert (payment["status"], payment["failure_code"]) == ("FAILED", GENERIC_DECLINE)
    assert payment["failure_message"] == failure_message(GENERIC_DECLINE)


async def test_the_reconciler_stores_the_code_the_gateway_gives_for_a_stuck_payment(
    database_url: str, db: asyncpg.Connection
) -> None:
    row = await insert_processing(db, order_id=1, amount=Decimal(5001))
    await checks.age_payment(db, payment_id=row["id"], seconds=90)
    pool = await create_pool(database_url, DatabaseSettings(pool_min_size=1, pool_max_size=2))
    try:
        gateway = SimulatedGateway(GatewaySettings(decline_codes=CODES))
        uow = UnitOfWork(pool, sql)
        [settled] = await reconcile_stuck_payments(command(), uow, gateway)
    finally:
        await pool.close()

    assert (settled.status, settled.failure_code) == ("FAILED", "insufficient_funds")
    assert settled.failure_message == failure_message("insufficient_funds")


async def test_operators_see_declines_by_code_and_each_failure_in_the_timeline(
    declining: RunningService, db: asyncpg.Connection
) -> None:
    for order_id, amount in enumerate((5001, 5001, 5002), start=31):
        await declined(declining, order_id, amount)

    by_code = {r["failure_code"]: r["attempts"] async for r in checks.declines_by_code(db)}
    timeline = [row async for row in sql.ops_order_timeline(db, order_id=31)]

    assert by_code == {"insufficient_funds": 2, "expired_card": 1}
    settled = [r for r in timeline if r["what"] == "payment failed"]
    assert [r["detail"] for r in settled] == ["insufficient_funds"]


async def test_the_migration_gives_each_existing_payment_its_attempt_and_failed_ones_a_code(
    postgres: TestPostgres,
) -> None:
    """Payments made before migration 0014 each had one attempt, their create; the
    failed ones were declined without a reason, so they get the generic decline."""
    name, url = postgres.create_database()
    connection = await asyncpg.connect(url)
    try:
        for path in migration_files():
            if path.name < "0014":
                await connection.execute(path.read_text(encoding="utf-8"))
        ids = {}
        for order_id, status in enumerate(("PROCESSING", "COMPLETED", "FAILED"), start=1):
            ids[status] = await checks.insert_payment_row(
                connection, order_id=order_id, amount=5000, currency="JPY", status="PROCESSING"
            )
            await checks.hand_typed_status_change(connection, payment_id=ids[status], status=status)
        [migration] = [path for path in migration_files() if path.name.startswith("0014")]
        await connection.execute(migration.read_text(encoding="utf-8"))
        views = {s: await sql.payment_by_id(connection, payment_id=i) for s, i in ids.items()}
    finally:
        await connection.close()
        postgres.drop_database(name)

    for status, row in views.items():
        [attempt] = json.loads(row["attempts"])
        assert attempt["transaction_id"] == str(row["transaction_id"])
        assert attempt["status"] == status
    failed = views["FAILED"]
    # The message as the migration wrote it (a later edit of the domain's sentence is
    # not the migration's to follow).
    assert failed["failure_code"] == GENERIC_DECLINE and failed["failure_message"]
    assert views["COMPLETED"]["failure_code"] is None
