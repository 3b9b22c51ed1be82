"""`payments import FILE` (issue 7): a bulk import pays each order once, in idempotent batch
calls by default, or one call per order with `--one-by-one`.

The end-to-end tests run the command as an operator would, in a subprocess against the
service over real HTTP, and check the report, the summary, the exit status, the stored
payments (GET, tests/sql/) and the Order Service's webhooks. The tests of what the command
sends run it in this process, and the unit tests at the end cover row checks and retries
without a service.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web
from click.testing import CliRunner

from service.domain.rules import PaymentStatus
from service.importer.batches import BatchClient
from service.importer.cli import import_command
from service.importer.client import PaymentsClient
from service.importer.outcomes import Outcome
from service.importer.retry import RetryPolicy
from service.importer.rows import Payment, read_rows
from tests.support.callbacks import signed_headers
from tests.support.order_stub import OrderServiceStub
from tests.support.paths import PROJECT_ROOT
from tests.support.payments import payment_in
from tests.support.processes import clean_env
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()

COMMAND = "from service.importer.cli import import_command; import_command()"
PAYMENTS = "/api/v1/payments/"
DECLINED_AMOUNT = 666
PAID_FIELDS = ("payment_id", "payment_status", "http_status")


# --- helpers ---------------------------------------------------------------------------------


@dataclass
class Imported:
    code: int
    stdout: str
    stderr: str
    report: list[dict[str, str]]

    def outcomes(self) -> list[str]:
        return [line["outcome"] for line in self.report]

    def by_order(self, outcome: str) -> dict[int, dict[str, str]]:
        return {int(r["order_id"]): r for r in self.report if r["outcome"] == outcome}


async def start_import(
    path: Path, url: str, *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """The command in a subprocess (the service keeps serving in this test's event loop)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        COMMAND,
        str(path),
        "--url",
        url,
        *args,
        cwd=PROJECT_ROOT,
        env=env or clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def import_here(path: Path, url: str, *args: str) -> Imported:
    """The same command in this process, on a thread (it runs its own event loop), for the
    tests of what it sends: a process start costs a second of imports each time."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k not in clean_env()}
    result = await asyncio.to_thread(
        CliRunner().invoke, import_command, [str(path), "--url", url, *args], env=unset
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return read_report(result.exit_code, result.stdout, "", path)


def read_report(code: int, stdout: str, stderr: str, path: Path) -> Imported:
    report_path = path.with_name(path.name + ".report.csv")
    report = list(csv.DictReader(report_path.open(newline=""))) if report_path.exists() else []
    return Imported(code, stdout, stderr, report)


async def finish(process: asyncio.subprocess.Process, path: Path) -> Imported:
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return read_report(process.returncode, stdout.decode(), stderr.decode(), path)


async def run_import(
    path: Path, url: str, *args: str, env: dict[str, str] | None = None
) -> Imported:
    return await finish(await start_import(path, url, *args, env=env), path)


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("order_id,amount,currency\n" + "\n".join(rows) + "\n")
    return path


async def pay(client: httpx.AsyncClient, order_id: int, amount: int) -> httpx.Response:
    return await client.post(PAYMENTS, json={"order_id": order_id, "amount": amount})


async def payments_per_order(db: asyncpg.Connection, order_ids: list[int]) -> Counter[int]:
    counts: Counter[int] = Counter()
    for order_id in order_ids:
        counts[order_id] = await checks.count_payments_of_order(db, order_id=order_id)
    return counts


# --- a 2,000-row file with invalid rows, duplicate rows and orders already paid -------------

INVALID_ROWS = [
    ("7001,99,JPY", "between 100 and 1,000,000"),
    ("7002,100.5,", "whole number of yen"),
    ("7003,abc,JPY", "must be a number"),
    (",5000,JPY", "order_id is missing"),
    ("7005,5000,USD", "currency must be JPY"),
    ("0,5000,", "order_id must be between 1"),
    ("7007,1000001,", "between 100 and 1,000,000"),
    ("7008,,JPY", "amount is missing"),
]
ALREADY_PAID = list(range(9001, 9021))  # 20 orders paid through the API beforehand
DUPLICATES = 12
DUPLICATES_OF = list(range(1, DUPLICATES + 1))  # orders whose row appears again at the end


def mixed_file(path: Path) -> tuple[Path, list[tuple[str, str]]]:
    """2,000 rows and the outcome (and detail fragment) each must end with, in file order."""
    rows: list[tuple[str, str, str]] = []  # (csv line, outcome, detail fragment)
    new_orders = 2000 - len(INVALID_ROWS) - len(ALREADY_PAID) - DUPLICATES
    for order_id in range(1, new_orders + 1):
        currency = "JPY" if order_id % 2 else ""  # the column is optional per row
        rows.append((f"{order_id},{1000 + order_id % 900 * 10},{currency}", "paid", ""))
    spots = random.Random(7).sample(range(50, new_orders), len(INVALID_ROWS) + len(ALREADY_PAID))
    extras = [(line, "invalid", why) for line, why in INVALID_ROWS]
    # Half with the amount they were paid with, half with another one.
    extras += [(f"{o},{3000 if o % 2 else 4500},", "already_paid", "") for o in ALREADY_PAID]
    for spot, extra in sorted(zip(spots, extras, strict=True), reverse=True):
        rows.insert(spot, extra)
    for order_id in DUPLICATES_OF:  # the first row of each was paid
        amount = 1000 + order_id % 900 * 10 if order_id % 2 else 777
        rows.append((f"{order_id},{amount},JPY", "duplicate_in_file", "already on line"))
    assert len(rows) == 2000
    write_csv(path, [line for line, _, _ in rows])
    return path, [(outcome, why) for _, outcome, why in rows]


@pytest.mark.slow
async def test_a_2000_row_file_pays_each_valid_new_order_once_and_reports_every_row(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection, tmp_path: Path
) -> None:
    # Without the in-process relay, a third less work for the one core the test server has;
    # the webhooks of an import are the subject of the rerun test below.
    settings = make_settings(database_url, order_stub.url, outbox={"relay_in_process": False})
    async with serve(settings) as service:
        before = {}
        for order_id in ALREADY_PAID:
            response = await pay(service.client, order_id, 3000)
            assert response.status_code == 201, response.text
            before[order_id] = response.json()["id"]
        path, expected = mixed_file(tmp_path / "orders.csv")

        result = await run_import(path, service.url)
        stored = [(await service.client.get(f"{PAYMENTS}order/{n}")).json() for n in DUPLICATES_OF]

    assert result.code == 1, result.stdout + result.stderr  # invalid and duplicate rows
    assert len(result.report) == 2000
    assert [int(line["line"]) for line in result.report] == list(range(2, 2002))
    assert result.outcomes() == [outcome for outcome, _ in expected]
    for line, (_, why) in zip(result.report, expected, strict=True):
        assert why in line["detail"], line
    paid = result.by_order("paid")
    assert all(
        r["payment_status"] == "COMPLETED" and r["http_status"] == "201" for r in paid.values()
    )
    already = result.by_order("already_paid")
    assert {o: int(r["payment_id"]) for o, r in already.items()} == before
    assert all(r["http_status"] == "400" for r in already.values())
    assert all(r["problem_type"].endswith("/duplicate-order") for r in already.values())
    assert "of 3000 JPY, not 4500" in already[9002]["detail"]  # paid with another amount
    invalid = [r for r in result.report if r["outcome"] == "invalid"]
    assert all(r["payment_id"] == r["http_status"] == "" for r in invalid)

    assert "rows: 2000; paid 1960, already paid 20, processing 0, refunded 0, " in result.stdout
    assert "declined 0, invalid 8, " in result.stdout
    assert "duplicate in file 12, rejected 0, failed 0" in result.stdout
    print(result.stdout)  # the time and rate, for the record (-s)

    counts = await payments_per_order(db, [*paid, *already, 7001, 7002, 7003, 7005, 7007, 7008])
    assert {o: counts[o] for o in [*paid, *already]} == dict.fromkeys([*paid, *already], 1)
    assert sum(counts[o] for o in (7001, 7002, 7003, 7005, 7007, 7008)) == 0
    for order_id, payment in zip(DUPLICATES_OF, stored, strict=True):
        assert payment["amount"] == 1000 + order_id % 900 * 10  # the first row's amount
        assert payment["id"] == int(paid[order_id]["payment_id"])


@pytest.mark.slow
async def test_a_clean_json_lines_file_exits_0(service: RunningService, tmp_path: Path) -> None:
    path = tmp_path / "orders.ndjson"
    lines = [{"order_id": n, "amount": 100.0 if n % 2 else 5000} for n in range(1, 51)]
    lines[0]["currency"] = "JPY"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")

    result = await run_import(path, service.url, "--concurrency", "4")

    assert result.code == 0, result.stdout + result.stderr
    assert result.outcomes() == ["paid"] * 50
    stored = (await service.client.get(f"{PAYMENTS}order/1")).json()
    assert stored["amount"] == 100 and stored["id"] == int(result.report[0]["payment_id"])


# --- reruns ----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_same_file_imported_twice_pays_and_notifies_each_order_once(
    service: RunningService, order_stub: OrderServiceStub, db: asyncpg.Connection, tmp_path: Path
) -> None:
    orders = list(range(1, 301))
    path = write_csv(tmp_path / "orders.csv", [f"{n},{200 + n}," for n in orders])

    first = await run_import(path, service.url, "--batch-size", "70")
    second = await run_import(path, service.url, "--batch-size", "70")

    assert (first.code, second.code) == (0, 0), first.stdout + second.stdout
    assert first.outcomes() == ["paid"] * 300
    # Replayed by the Idempotency-Key: reported as paid before, with the same payment.
    assert second.outcomes() == ["already_paid"] * 300
    assert [r["payment_id"] for r in second.report] == [r["payment_id"] for r in first.report]
    assert all(r["http_status"] == "201" and "replayed" in r["detail"] for r in second.report)
    assert "paid 0, already paid 300" in second.stdout
    counts = await payments_per_order(db, orders)
    assert set(counts.values()) == {1}
    # The Order Service hears of each payment once: one outbox event per order, delivered.
    await order_stub.wait_for_accepted(len(orders), 60)
    for order_id in orders:
        events = [row async for row in checks.outbox_events_of_order(db, order_id=order_id)]
        assert len(events) == 1 and events[0]["delivered_at"] is not None
    webhooks = [call for call in order_stub.accepted if call.body["payment_status"] == "completed"]
    assert Counter(call.order_id for call in webhooks) == Counter(orders)


@pytest.mark.slow
async def test_an_import_interrupted_with_ctrl_c_then_run_again_pays_every_order_once(
    service: RunningService, db: asyncpg.Connection, tmp_path: Path
) -> None:
    orders = list(range(1, 601))
    path = write_csv(tmp_path / "orders.csv", [f"{n},{1000 + n}," for n in orders])
    process = await start_import(path, service.url, "--batch-size", "20", "--concurrency", "2")
    while (await service.client.get(f"{PAYMENTS}order/100")).status_code != 200:
        assert process.returncode is None, "the import ended before it was interrupted"
        await asyncio.sleep(0.05)

    process.send_signal(signal.SIGINT)
    stopped = await finish(process, path)

    assert stopped.code == 130, stopped.stdout + stopped.stderr
    assert "stopped: interrupted by SIGINT" in stopped.stdout
    assert [int(r["order_id"]) for r in stopped.report] == orders  # whole, in input order
    outcomes = Counter(stopped.outcomes())
    assert set(outcomes) == {"paid", "not_sent"}
    assert outcomes["paid"] >= 100 and outcomes["not_sent"] > 0
    paid_first = stopped.by_order("paid")
    counts = await payments_per_order(db, orders)
    assert {o: counts[o] for o in orders} == {o: int(o in paid_first) for o in orders}

    final = await run_import(path, service.url, "--batch-size", "20")

    assert final.code == 0, final.stdout + final.stderr
    assert [int(r["order_id"]) for r in final.report] == orders
    for row in final.report:
        order_id = int(row["order_id"])
        if order_id in paid_first:
            assert row["outcome"] == "already_paid"
            assert row["payment_id"] == paid_first[order_id]["payment_id"]
        else:
            assert row["outcome"] == "paid"
    counts = await payments_per_order(db, orders)
    assert set(counts.values()) == {1}


@pytest.mark.slow
async def test_a_second_ctrl_c_abandons_the_calls_in_flight_and_reports_them_failed(
    tmp_path: Path,
) -> None:
    arrived: list[int] = []
    both_in_flight, release = asyncio.Event(), asyncio.Event()

    async def never_answers(request: web.Request) -> web.Response:
        arrived.append((await request.json())["order_id"])
        if len(arrived) == 2:
            both_in_flight.set()
        await release.wait()
        return web.json_response({}, status=201)

    app = web.Application()
    app.router.add_post(PAYMENTS, never_answers)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    path = write_csv(tmp_path / "orders.csv", [f"{n},1000," for n in range(1, 6)])
    try:
        process = await start_import(path, url, "--one-by-one", "--concurrency", "2")
        await asyncio.wait_for(both_in_flight.wait(), 30)
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        assert b"stopping" in await asyncio.wait_for(process.stderr.readline(), 30)
        process.send_signal(signal.SIGINT)
        result = await finish(process, path)
    finally:
        release.set()
        await runner.cleanup()

    assert result.code == 130
    assert result.outcomes() == ["failed", "failed", "not_sent", "not_sent", "not_sent"]
    assert all("outcome is unknown" in row["detail"] for row in result.report[:2])


# --- orders whose payment is still processing, or was refunded --------------------------------


@pytest.mark.slow
async def test_a_payment_still_processing_or_refunded_is_reported_as_such_not_already_paid(
    service: RunningService, db: asyncpg.Connection, tmp_path: Path
) -> None:
    undecided = await payment_in(db, 1, PaymentStatus.PROCESSING)
    refunded = await payment_in(db, 2, PaymentStatus.REFUNDED)
    completed = await payment_in(db, 3, PaymentStatus.COMPLETED)
    path = write_csv(tmp_path / "orders.csv", ["1,1000,", "2,2000,", "3,1000,", "4,1000,"])

    result = await run_import(path, service.url)

    assert result.code == 1, result.stdout + result.stderr  # two orders are not paid
    assert result.outcomes() == ["processing", "refunded", "already_paid", "paid"]
    processing, refund, already, _ = result.report
    assert (processing["payment_id"], processing["payment_status"]) == (
        str(undecided),
        "PROCESSING",
    )
    assert "the gateway has not decided yet" in processing["detail"]
    assert (refund["payment_id"], refund["payment_status"]) == (str(refunded), "REFUNDED")
    assert "a payment of 1000 JPY, not 2000, refunded since" in refund["detail"]
    assert "paying it again needs a new order" in refund["detail"]
    assert (already["payment_id"], already["payment_status"]) == (str(completed), "COMPLETED")
    assert "rows: 4; paid 1, already paid 1, processing 1, refunded 1, declined 0" in result.stdout
    assert await payments_per_order(db, [1, 2, 3, 4]) == Counter({1: 1, 2: 1, 3: 1, 4: 1})


async def test_a_replayed_answer_of_a_payment_processing_then_reports_it_as_it_stands_now(
    database_url: str, order_stub: OrderServiceStub, tmp_path: Path
) -> None:
    """A rerun replays the first run's stored answers (PROCESSING, the gateway being
    asynchronous): each payment is reported as it stands at the rerun."""
    gateway = {"mode": "async", "reconcile_after_seconds": 3600.0}
    path = write_csv(tmp_path / "orders.csv", ["1,1000,", "2,1000,"])
    async with serve(make_settings(database_url, order_stub.url, gateway=gateway)) as running:
        first = await import_here(path, running.url)
        settled = json.dumps(
            {"transaction_id": await transaction_of(running, 1), "status": "completed"}
        )
        callback = await running.client.post(
            f"{PAYMENTS}webhook", content=settled, headers=signed_headers(settled.encode())
        )
        assert callback.status_code == 200, callback.text
        second = await import_here(path, running.url)

    assert first.outcomes() == ["paid", "paid"]
    assert [r["payment_status"] for r in first.report] == ["PROCESSING", "PROCESSING"]
    assert second.code == 1
    assert second.outcomes() == ["already_paid", "processing"]
    assert [r["payment_status"] for r in second.report] == ["COMPLETED", "PROCESSING"]
    assert [r["payment_id"] for r in second.report] == [r["payment_id"] for r in first.report]


async def transaction_of(running: RunningService, order_id: int) -> str:
    response = await running.client.get(f"{PAYMENTS}order/{order_id}")
    assert response.status_code == 200, response.text
    transaction_id: str = response.json()["transaction_id"]
    return transaction_id


# --- declines, authentication ------------------------------------------------------


@pytest.mark.slow
async def test_a_declined_row_is_reported_with_its_payment_and_stays_declined(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection, tmp_path: Path
) -> None:
    settings = make_settings(database_url, order_stub.url, gateway={"decline_amounts": [666]})
    async with serve(settings) as running:
        earlier = await pay(running.client, 3, DECLINED_AMOUNT)  # declined before the import
        assert earlier.status_code == 402
        path = write_csv(tmp_path / "orders.csv", ["1,5000,", f"2,{DECLINED_AMOUNT},", "3,5000,"])

        first = await run_import(path, running.url)
        second = await run_import(path, running.url)

    assert (first.code, second.code) == (1, 1)
    assert first.outcomes() == ["paid", "declined", "declined"]
    assert second.outcomes() == ["already_paid", "declined", "declined"]
    for result in (first, second):
        declined = result.report[1]
        assert declined["http_status"] == "402" and declined["payment_status"] == "FAILED"
        assert declined["problem_type"].endswith("/payment-declined")
        assert declined["payment_id"] == first.report[1]["payment_id"] != ""
        assert result.report[2]["payment_id"] == str(earlier.json()["payment_id"])
    assert "declined 2" in first.stdout
    assert await payments_per_order(db, [1, 2, 3]) == Counter({1: 1, 2: 1, 3: 1})


@pytest.mark.slow
async def test_a_token_is_sent_and_a_refused_one_stops_the_import(
    database_url: str, order_stub: OrderServiceStub, tmp_path: Path
) -> None:
    settings = make_settings(database_url, order_stub.url, auth={"tokens": ["s3cret"]})
    path = write_csv(tmp_path / "orders.csv", [f"{n},1000," for n in range(1, 101)])
    async with serve(settings) as running:
        refused = await run_import(path, running.url, "--batch-size", "10", "--concurrency", "2")
        accepted = await run_import(path, running.url, env=clean_env(PAYMENTS_API_TOKEN="s3cret"))

    assert refused.code == 1
    assert "stopped: the service refused the credentials" in refused.stdout
    assert set(refused.outcomes()) == {"rejected", "not_sent"}
    assert {r["http_status"] for r in refused.report if r["outcome"] == "rejected"} == {"401"}
    assert accepted.code == 0 and accepted.outcomes() == ["paid"] * 100


# --- without a service: row checks, file errors, retries -------------------------------------


def test_rows_are_checked_with_the_domain_rules(tmp_path: Path) -> None:
    path = tmp_path / "orders.txt"  # no known extension: JSON lines by content
    path.write_text(
        '{"order_id": 1, "amount": 100.0}\n'
        '{"order_id": 2, "amount": "500"}\n'
        '{"order_id": 3, "amount": 500, "note": "x"}\n'
        "not json\n"
        "\n"
        '{"order_id": 9223372036854775808, "amount": 500}\n'
        '{"order_id": true, "amount": 500}\n'
        '{"order_id": 1, "amount": 200}\n'
    )
    rows = read_rows(path)
    assert [row.line for row in rows] == [1, 2, 3, 4, 6, 7, 8]
    assert rows[0].payment == Payment(1, 100, "JPY") and rows[0].sendable
    problems = [row.problem for row in rows[1:6]]
    assert "amount must be a JSON number" in problems[0]
    assert "unknown field(s): note" in problems[1]
    assert "not valid JSON" in problems[2]
    assert "order_id must be between 1 and" in problems[3]
    assert "order_id must be an integer" in problems[4]
    assert rows[6].first_line == 1 and not rows[6].sendable


def test_the_idempotency_key_is_derived_from_the_row() -> None:
    assert Payment(1, 5000).idempotency_key() == Payment(1, 5000, "JPY").idempotency_key()
    assert Payment(1, 5000).idempotency_key() != Payment(1, 5001).idempotency_key()
    assert Payment(1, 5000).idempotency_key().startswith("import-")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("order,amount\n1,500\n", "header must be order_id,amount"),
        ("order_id,currency\n1,JPY\n", "lacks amount"),
        ('[{"order_id": 1, "amount": 500}]\n', "JSON array"),
    ],
)
def test_an_unreadable_file_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "orders.dat"
    path.write_text(text)
    result = CliRunner().invoke(import_command, [str(path), "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert message in result.output


def answering(*answers: int | Exception) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering the create call in turn; the last answer repeats."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        if answer == 201:
            return httpx.Response(201, json={"id": 7, "order_id": 1, "status": "COMPLETED"})
        return httpx.Response(answer, json={"type": f"https://x/problems/{answer}", "detail": "d"})

    return httpx.MockTransport(handle), seen


@pytest.mark.parametrize(
    ("answers", "outcome", "sends"),
    [
        ((503, httpx.ConnectError("refused"), 500, 201), Outcome.PAID, 4),
        ((409, 201), Outcome.PAID, 2),
        ((503,), Outcome.FAILED, 3),
        ((httpx.ReadTimeout("slow"),), Outcome.FAILED, 3),
        ((422,), Outcome.REJECTED, 1),
        ((413,), Outcome.REJECTED, 1),
    ],
)
async def test_network_errors_and_5xx_are_retried_a_bounded_number_of_times_4xx_are_final(
    answers: tuple[int | Exception, ...], outcome: Outcome, sends: int
) -> None:
    transport, seen = answering(*answers)
    policy = RetryPolicy(retries=2 if outcome is Outcome.FAILED else 5, base_seconds=0.001)
    async with httpx.AsyncClient(base_url="http://payments", transport=transport) as http:
        result = await PaymentsClient(http, policy).pay(Payment(1, 5000))

    assert result.outcome is outcome
    assert result.sends == len(seen) == sends
    assert len({request.headers["idempotency-key"] for request in seen}) == 1
    assert len({request.content for request in seen}) == 1


def batch_answering(*answers: int | Exception) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering the batch call in turn (200: every row paid); the last repeats."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        if answer != 200:
            return httpx.Response(answer, json={"type": f"https://x/problems/{answer}"})
        entries = json.loads(request.content)["payments"]
        results = [
            {"index": i, "order_id": e["order_id"], "status": 201, "payment": {"id": i + 1}}
            for i, e in enumerate(entries)
        ]
        return httpx.Response(200, json={"results": results})

    return httpx.MockTransport(handle), seen


@pytest.mark.parametrize(
    ("answers", "outcome", "sends"),
    [
        ((503, httpx.ConnectError("refused"), 409, 200), Outcome.PAID, 4),
        ((503,), Outcome.FAILED, 3),
        ((413,), Outcome.REJECTED, 1),
    ],
)
async def test_a_batch_call_is_retried_whole_with_one_key_and_reported_per_row(
    answers: tuple[int | Exception, ...], outcome: Outcome, sends: int
) -> None:
    transport, seen = batch_answering(*answers)
    policy = RetryPolicy(retries=2 if outcome is Outcome.FAILED else 5, base_seconds=0.001)
    payments = [Payment(1, 5000), Payment(2, 6000), Payment(3, 7000)]
    async with httpx.AsyncClient(base_url="http://payments", transport=transport) as http:
        results = await BatchClient(http, policy).pay_batch(payments)

    assert [result.outcome for result in results] == [outcome] * 3
    assert {result.sends for result in results} == {len(seen)} == {sends}
    assert {request.url.path for request in seen} == {"/api/v1/payments/batch"}
    assert len({request.headers["idempotency-key"] for request in seen}) == 1
    assert len({request.content for request in seen}) == 1
    if outcome is Outcome.PAID:
        assert [result.payment_id for result in results] == [1, 2, 3]


async def recording_service() -> tuple[web.AppRunner, str, list[tuple[str, str, Any]]]:
    """A stand-in payments API that pays everything and records (path, key, body) per call."""
    calls: list[tuple[str, str, Any]] = []

    async def single(request: web.Request) -> web.Response:
        body = await request.json()
        calls.append((request.path, request.headers["idempotency-key"], body))
        return web.json_response({"id": body["order_id"], "status": "COMPLETED"}, status=201)

    async def batch(request: web.Request) -> web.Response:
        body = await request.json()
        calls.append((request.path, request.headers["idempotency-key"], body))
        results = [
            {"index": i, "order_id": e["order_id"], "status": 201, "payment": {"id": e["order_id"]}}
            for i, e in enumerate(body["payments"])
        ]
        return web.json_response({"results": results})

    app = web.Application()
    app.router.add_post(PAYMENTS, single)
    app.router.add_post("/api/v1/payments/batch", batch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}", calls


async def test_the_default_sends_batches_of_batch_size_and_one_by_one_sends_rows(
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path / "orders.csv", [f"{n},{1000 + n}," for n in range(1, 8)])
    runner, url, calls = await recording_service()
    try:
        batched = await import_here(path, url, "--batch-size", "3")
        batch_calls = list(calls)
        again = await import_here(path, url, "--batch-size", "3")
        rerun_calls = calls[len(batch_calls) :]
        calls.clear()
        single = await import_here(path, url, "--one-by-one")
    finally:
        await runner.cleanup()

    assert (batched.code, again.code, single.code) == (0, 0, 0)
    assert batched.outcomes() == single.outcomes() == ["paid"] * 7
    assert [r["payment_id"] for r in batched.report] == [str(n) for n in range(1, 8)]
    paths = {call_path for call_path, _, _ in batch_calls}
    assert paths == {"/api/v1/payments/batch"}
    sizes = [[e["order_id"] for e in body["payments"]] for _, _, body in batch_calls]
    assert sorted(sizes) == [[1, 2, 3], [4, 5, 6], [7]]
    # The rerun made the same batches: the same keys, so the service would replay them.
    keys = {key for _, key, _ in batch_calls}
    assert len(keys) == 3 and {key for _, key, _ in rerun_calls} == keys
    assert sorted(body["order_id"] for _, _, body in calls) == list(range(1, 8))
    assert {call_path for call_path, _, _ in calls} == {PAYMENTS}


async def test_one_by_one_still_pays_each_row_and_a_batch_rerun_reports_them_paid(
    service: RunningService, db: asyncpg.Connection, tmp_path: Path
) -> None:
    orders = list(range(1, 41))
    path = write_csv(tmp_path / "orders.csv", [f"{n},{300 + n}," for n in orders])

    first = await import_here(path, service.url, "--one-by-one", "--concurrency", "4")
    second = await import_here(path, service.url)

    assert (first.code, second.code) == (0, 0), first.stdout + second.stdout
    assert first.outcomes() == ["paid"] * 40
    assert all(r["http_status"] == "201" for r in first.report)
    # Other keys (a batch's), so the service runs it: every order is a duplicate, found paid.
    assert second.outcomes() == ["already_paid"] * 40
    assert [r["payment_id"] for r in second.report] == [r["payment_id"] for r in first.report]
    assert all(r["problem_type"].endswith("/duplicate-order") for r in second.report)
    assert set((await payments_per_order(db, orders)).values()) == {1}
