"""The operators' questions: `ops` views, the named queries of sql/ops.sql, `payments ops`.

One populated database: payments made through the HTTP API (completed, declined,
refunded), payments left PROCESSING, and outbox events put by hand into each
delivery state (no relay runs, so nothing moves while the answers are checked).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from click.testing import CliRunner, Result

from service.db.embedded import bin_dir
from service.db.sql import SQL_DIR, load_queries
from service.domain.rules import PaymentStatus
from service.ops import ops_group
from service.ops.cli import parse_value
from service.ops.queries import ops_queries
from tests.support.order_stub import OrderServiceStub
from tests.support.payments import find_payment, insert_processing, payment_in
from tests.support.processes import clean_env
from tests.support.service import serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

sql: Any = load_queries()
checks: Any = load_test_queries()
DECLINED = 666
VIEWS = {
    "payments_by_status_day", "processing_payments", "stuck_payments", "refunds_by_day",
    "outbox_backlog", "undelivered_events", "dead_events", "delivery_attempts_by_order",
    "order_timeline", "payments_for_manual_review", "declines_by_code_day",
    "payments_waiting_for_buyer",
}  # fmt: skip


@dataclass(frozen=True)
class Populated:
    url: str
    db: asyncpg.Connection
    today: date
    payment_of: dict[int, int]  # order_id -> payment id


async def rows(query: Any, db: asyncpg.Connection, **params: Any) -> list[dict[str, Any]]:
    return [dict(row) async for row in query(db, **params)]


@pytest.fixture
async def populated(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> Populated:
    settings = make_settings(
        database_url,
        order_stub.url,
        gateway={"decline_amounts": [DECLINED], "reconcile_after_seconds": 10**8},
        outbox={"relay_in_process": False},
    )
    async with serve(settings) as service:
        for order_id, amount in [(101, 1000), (102, 2500), (103, 4000)]:
            created = await service.client.post(
                "/api/v1/payments/", json={"order_id": order_id, "amount": amount}
            )
            assert created.status_code == 201, created.text
        declined = await service.client.post(
            "/api/v1/payments/", json={"order_id": 104, "amount": DECLINED}
        )
        assert declined.status_code == 402, declined.text
        payment_103 = (await service.client.get("/api/v1/payments/order/103")).json()["id"]
        refund = await service.client.post(
            "/api/v1/payments/refund", json={"payment_id": payment_103, "reason": "cancelled"}
        )
        assert refund.status_code == 201, refund.text
    # The service is stopped: no relay or reconciler moves anything from here on.
    for order_id, amount, age in [(105, 777, 600), (106, 800, 0)]:
        row = await insert_processing(db, order_id, Decimal(amount))
        await checks.age_payment(db, payment_id=row["id"], seconds=age)
    payment_of = {o: await checks.payment_id_of_order(db, order_id=o) for o in range(101, 107)}
    payment_102 = await find_payment(db, payment_of[102])
    await sql.record_gateway_event(
        db, webhook_id="cb-102", transaction_id=payment_102["transaction_id"], status="completed"
    )
    event = {
        (e["order_id"], json.loads(e["body"])["payment_status"]): e["id"]
        for order_id in range(101, 105)
        for e in await rows(checks.outbox_events_of_order, db, order_id=order_id)
    }
    assert len(event) == 5
    await checks.mark_event_delivered(db, event_id=event[101, "completed"])
    await checks.mark_event_dead(db, event_id=event[102, "completed"], attempts=8, error="HTTP 503")
    await checks.mark_event_delivered(db, event_id=event[103, "completed"])
    await checks.mark_event_retrying(
        db, event_id=event[103, "refunded"], attempts=2, error="connection refused"
    )
    await checks.mark_event_claimed(db, event_id=event[104, "failed"], relay_id="relay-a")
    return Populated(database_url, db, await checks.current_day(db), payment_of)


async def test_every_ops_view_has_a_question(populated: Populated) -> None:
    views = await rows(checks.ops_views, populated.db)
    assert {view["name"] for view in views} == VIEWS
    for view in views:
        assert view["comment"] and "?" in view["comment"], view["name"]


async def test_payments_and_refunds_by_day(populated: Populated) -> None:
    db, today = populated.db, populated.today
    by_status = await rows(sql.ops_payments_by_status_day, db, since_days=1)
    assert [(r["day"], r["status"], r["count"], r["total_jpy"]) for r in by_status] == [
        (today, "COMPLETED", 2, Decimal(3500)),
        (today, "FAILED", 1, Decimal(DECLINED)),
        (today, "PROCESSING", 2, Decimal(1577)),
        (today, "REFUNDED", 1, Decimal(4000)),
    ]
    assert await rows(sql.ops_payments_by_status_day, db, since_days=0) == []
    refunds = await rows(sql.ops_refunds_by_day, db, since_days=7)
    assert refunds == [{"day": today, "count": 1, "total_jpy": Decimal(4000)}]
    assert await rows(sql.ops_refunds_by_day, db, since_days=0) == []


async def test_stuck_payments(populated: Populated) -> None:
    db = populated.db
    stuck = await rows(sql.ops_stuck_payments, db, older_than_seconds=60)
    assert [(r["order_id"], r["amount_jpy"]) for r in stuck] == [(105, Decimal(777))]
    assert stuck[0]["payment_id"] == populated.payment_of[105]
    assert stuck[0]["age"] >= timedelta(seconds=600)
    assert await rows(sql.ops_stuck_payments, db, older_than_seconds=3600) == []
    # A fraction of a second is enough to catch the one just created, too.
    recent = await rows(sql.ops_stuck_payments, db, older_than_seconds=0.000001)
    assert {r["order_id"] for r in recent} == {105, 106}
    # The view's fixed threshold is one minute.
    assert [r["order_id"] for r in await rows(checks.all_stuck_payments, db)] == [105]


async def test_payments_for_manual_review(populated: Populated) -> None:
    db, payment_of = populated.db, populated.payment_of
    assert await rows(sql.ops_payments_for_manual_review, db) == []
    for order_id in (105, 106):
        await sql.flag_for_manual_review(db, payment_id=payment_of[order_id], older_than_seconds=60)
    # Settled payments are never flagged, nor listed.
    await sql.flag_for_manual_review(db, payment_id=payment_of[101], older_than_seconds=0)

    review = await rows(sql.ops_payments_for_manual_review, db)
    assert [(r["order_id"], r["amount_jpy"]) for r in review] == [(105, Decimal(777))]
    assert review[0]["age"] >= timedelta(seconds=600)
    assert review[0]["flagged_at"] is not None


async def test_payments_waiting_for_buyer(populated: Populated) -> None:
    db = populated.db
    assert await rows(sql.ops_payments_waiting_for_buyer, db) == []
    for order_id, age in [(107, 60), (108, 900)]:
        payment_id = await payment_in(db, order_id, PaymentStatus.PENDING, Decimal(order_id))
        await checks.age_payment(db, payment_id=payment_id, seconds=age)

    waiting = await rows(sql.ops_payments_waiting_for_buyer, db)
    assert [(r["order_id"], r["amount_jpy"]) for r in waiting] == [
        (108, Decimal(108)),
        (107, Decimal(107)),
    ]
    assert waiting[0]["waiting"] >= timedelta(seconds=900)
    assert waiting[1]["waiting"] < timedelta(seconds=900)


async def test_outbox_backlog(populated: Populated) -> None:
    backlog = dict(await sql.ops_outbox_backlog(populated.db))
    age, seconds = backlog.pop("oldest_pending_age"), backlog.pop("oldest_pending_seconds")
    assert backlog == {
        "pending": 2,  # 103's refund webhook (retrying) and 104's (in flight)
        "in_flight": 1,
        "retrying": 1,
        "dead": 1,
        "delivered_last_hour": 2,
        "blocked": 0,
    }
    assert timedelta(0) < age < timedelta(minutes=5)
    assert seconds == pytest.approx(age.total_seconds(), abs=1)


async def test_undelivered_and_dead_events(populated: Populated) -> None:
    db = populated.db
    undelivered = await rows(sql.ops_undelivered_events, db, max_rows=10)
    # Oldest first: 102's settle, 104's settle, then 103's refund.
    assert [
        (r["order_id"], r["payment_status"], r["state"], r["attempts"]) for r in undelivered
    ] == [
        (102, "completed", "dead", 8),
        (104, "failed", "in flight", 0),
        (103, "refunded", "retrying", 2),
    ]
    assert undelivered[0]["next_attempt_at"] is None
    assert undelivered[2]["last_error"] == "connection refused"
    assert len(await rows(sql.ops_undelivered_events, db, max_rows=1)) == 1

    dead = await rows(sql.ops_dead_events, db, max_rows=10)
    assert len(dead) == 1
    assert (dead[0]["order_id"], dead[0]["payment_id"]) == (102, populated.payment_of[102])
    assert json.loads(dead[0]["body"])["payment_status"] == "completed"
    assert (dead[0]["attempts"], dead[0]["last_error"]) == (8, "HTTP 503")
    assert dead[0]["dead_at"] is not None
    assert await rows(sql.ops_dead_events, db, max_rows=0) == []


async def test_delivery_attempts_by_order(populated: Populated) -> None:
    db = populated.db
    [order_103] = await rows(sql.ops_delivery_attempts, db, order_id=103)
    assert order_103 | {"last_event_at": None} == {
        "order_id": 103, "events": 2, "attempts": 3, "delivered": 1, "pending": 1, "blocked": 0,
        "dead": 0, "last_error": "connection refused", "last_error_before_delivery": None,
        "last_event_at": None,
    }  # fmt: skip
    everyone = await rows(checks.all_delivery_attempts_by_order, db)
    summary = {
        r["order_id"]: (r["events"], r["delivered"], r["pending"], r["dead"]) for r in everyone
    }
    assert summary == {101: (1, 1, 0, 0), 102: (1, 0, 0, 1), 103: (2, 1, 1, 0), 104: (1, 0, 1, 0)}
    assert await rows(sql.ops_delivery_attempts, db, order_id=105) == []


async def test_an_error_before_a_delivery_is_history_not_a_current_problem(
    populated: Populated,
) -> None:
    db = populated.db
    [event] = await rows(checks.outbox_events_of_order, db, order_id=101)
    await checks.mark_event_retrying(db, event_id=event["id"], attempts=1, error="HTTP 502")
    await checks.mark_event_delivered(db, event_id=event["id"])
    [order_101] = await rows(sql.ops_delivery_attempts, db, order_id=101)
    assert (order_101["delivered"], order_101["pending"], order_101["dead"]) == (1, 0, 0)
    assert order_101["last_error"] is None
    assert order_101["last_error_before_delivery"] == "HTTP 502"
    # An order with an undelivered event shows that event's error as current.
    [order_103] = await rows(sql.ops_delivery_attempts, db, order_id=103)
    assert order_103["last_error"] == "connection refused"


async def test_order_timeline(populated: Populated) -> None:
    db = populated.db
    timeline = await rows(sql.ops_order_timeline, db, order_id=103)
    assert [(r["what"], r["state"], r["amount_jpy"]) for r in timeline] == [
        ("payment created", "now REFUNDED", Decimal(4000)),
        ("payment completed", "COMPLETED", Decimal(4000)),
        ("webhook completed", "delivered", None),
        ("refund", "COMPLETED", Decimal(4000)),
        ("webhook refunded", "retrying", None),
    ]
    assert [r["at"] for r in timeline] == sorted(r["at"] for r in timeline)
    assert {r["payment_id"] for r in timeline} == {populated.payment_of[103]}
    assert timeline[2]["finished_at"] is not None and timeline[2]["attempts"] == 1
    assert timeline[3]["detail"] == "reason: cancelled"
    assert (timeline[4]["attempts"], timeline[4]["detail"]) == (2, "connection refused")

    whats: dict[int, list[tuple[str, str | None]]] = {}
    for order_id in (102, 104, 105):
        found = await rows(sql.ops_order_timeline, db, order_id=order_id)
        whats[order_id] = [(r["what"], r["state"]) for r in found]
    assert whats[102][-1] == ("gateway callback completed", None)
    assert ("webhook completed", "dead") in whats[102]
    assert whats[104] == [
        ("payment created", "now FAILED"), ("payment failed", "FAILED"),
        ("webhook failed", "in flight"),
    ]  # fmt: skip
    assert whats[105] == [("payment created", "now PROCESSING")]
    assert await rows(sql.ops_order_timeline, db, order_id=999) == []


def test_every_ops_query_is_tested_above() -> None:
    assert set(ops_queries()) == {
        "ops_payments_by_status_day", "ops_stuck_payments", "ops_refunds_by_day",
        "ops_outbox_backlog", "ops_undelivered_events", "ops_dead_events",
        "ops_delivery_attempts", "ops_order_timeline", "ops_payments_for_manual_review",
        "ops_payments_waiting_for_buyer",
    }  # fmt: skip
    assert all(query.question for query in ops_queries().values())


def test_cli_parameters_become_numbers_where_they_look_like_numbers() -> None:
    assert parse_value("42") == 42 and isinstance(parse_value("42"), int)
    assert parse_value("2.5") == 2.5
    assert parse_value("abc") == "abc"


async def cli(url: str, *args: str) -> Result:
    """The command runs its own event loop, so it goes on a thread."""
    env = {"PAYMENTS_DATABASE_URL": url}
    return await asyncio.to_thread(CliRunner().invoke, ops_group, list(args), env=env)


async def test_cli_lists_the_queries_with_their_questions(populated: Populated) -> None:
    for args in ([], ["list"]):
        listed = await cli(populated.url, *args)
        assert listed.exit_code == 0, listed.output
        for query in ops_queries().values():
            assert f"{query.name}({', '.join(query.parameters)})" in listed.output
            assert query.question in listed.output


async def test_cli_runs_a_query_as_a_table_and_as_json(populated: Populated) -> None:
    table = await cli(populated.url, "run", "ops_order_timeline", "order_id=103")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split("|")[1].strip() == "what"
    assert set(lines[1]) <= {"-", "+"}
    assert "refund" in lines[5] and "reason: cancelled" in lines[5]
    assert "webhook refunded" in lines[6] and "retrying" in lines[6]
    assert lines[-1] == "(5 rows)"
    # Columns line up: every `|` of the header and rows sits on a `+` of the rule.
    crossings = {i for i, char in enumerate(lines[1]) if char == "+"}
    for line in lines[0:1] + lines[2:-1]:
        assert {i for i, char in enumerate(line) if char == "|"} == crossings

    as_json = await cli(populated.url, "run", "order_timeline", "order_id=103", "--json")
    assert as_json.exit_code == 0, as_json.output
    timeline = json.loads(as_json.output)
    assert [r["what"] for r in timeline][-2:] == ["refund", "webhook refunded"]
    assert timeline[0]["amount_jpy"] == 4000

    backlog = await cli(populated.url, "run", "ops_outbox_backlog", "--json")
    assert json.loads(backlog.output)["dead"] == 1
    stuck = await cli(populated.url, "run", "ops_stuck_payments", "older_than_seconds=60")
    assert "105" in stuck.output and stuck.output.rstrip().endswith("(1 row)")


async def test_cli_refuses_unknown_queries_and_missing_parameters(populated: Populated) -> None:
    unknown = await cli(populated.url, "run", "ops_nothing")
    assert unknown.exit_code == 2 and "no ops query named" in unknown.output
    missing = await cli(populated.url, "run", "ops_order_timeline")
    assert missing.exit_code == 2 and "order_id=" in missing.output
    stray = await cli(populated.url, "run", "ops_order_timeline", "order_id=1", "limit=3")
    assert stray.exit_code == 2 and "ops_order_timeline(order_id)" in stray.output
    wrong_type = await cli(populated.url, "run", "ops_order_timeline", "order_id=abc")
    assert wrong_type.exit_code == 1 and "ops_order_timeline" in wrong_type.output


@pytest.mark.slow
async def test_payments_ops_command(populated: Populated) -> None:
    """`payments ops ...` as an operator types it."""
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from service.cli import main; main()", "ops", "run",
         "ops_order_timeline", "order_id=104"],
        capture_output=True, text=True, env=clean_env(PAYMENTS_DATABASE_URL=populated.url),
        timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "webhook failed" in run.stdout and "(3 rows)" in run.stdout


@pytest.mark.slow
async def test_ops_sql_runs_in_plain_psql(populated: Populated) -> None:
    """The file itself is psql-ready: its `:params` are psql variables."""
    variables = {"since_days": 7, "older_than_seconds": 60, "max_rows": 10, "order_id": 103}
    run = await asyncio.to_thread(
        subprocess.run,
        [str(bin_dir() / "psql"), "-X", "-v", "ON_ERROR_STOP=1",
         *(arg for name, value in variables.items() for arg in ("-v", f"{name}={value}")),
         "-f", str(SQL_DIR / "ops.sql"), populated.url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "webhook refunded" in run.stdout and "HTTP 503" in run.stdout
