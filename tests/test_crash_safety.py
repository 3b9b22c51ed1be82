"""Crash safety: the service SIGKILLed at random moments under load, restarted, nothing lost.

The service runs as in production (`payments serve`, granian) in a child process. A
client drives a few thousand creates, refunds, duplicates and Idempotency-Key replays
at 32 requests in flight while the service is killed with SIGKILL several times and
restarted; requests cut off by a kill are retried with the same Idempotency-Key. Then,
after reconciliation and delivery, the stored state must satisfy every invariant.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.order_stub import OrderServiceStub
from tests.support.processes import ServiceProcess, service_env
from tests.support.relay_helpers import wait_until
from tests.support.service import free_port
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()

SEED = 20240607
ORDERS = 2500
CONCURRENCY = 32
KILLS_UNDER_LOAD = 4  # and one more right after the load, while the relay delivers the tail
DECLINED_AMOUNT = 777  # the simulator declines it: FAILED payments too
# A request cut off by a kill is retried until it gets an answer; this long at most.
ANSWER_WITHIN_SECONDS = 120.0
# One attempt that takes longer than this is a hang, not a crash.
REQUEST_TIMEOUT_SECONDS = 30.0

# Short reconciliation, retries and leases so that the crash debris clears in seconds.
# The idempotency lock is shortened for the same reason: a key held by a request
# that died with the service frees after lock_seconds (default 60 s).
CONFIG = f"""
[gateway]
charge_timeout_seconds = 0.5
reconcile_after_seconds = 1.0
reconcile_interval_seconds = 0.5
decline_amounts = [{DECLINED_AMOUNT}]

[outbox]
retry_schedule_seconds = [0.2, 0.5, 1, 1, 1, 1, 1, 1, 1, 1]
lease_seconds = 3.0
request_timeout_seconds = 1.0

[idempotency]
lock_seconds = 3.0
"""

PAYMENTS = "/api/v1/payments/"
REFUNDS = "/api/v1/payments/refund"
EXPECTED_EVENTS = {
    "COMPLETED": ["completed"],
    "FAILED": ["failed"],
    "REFUNDED": ["completed", "refunded"],
}


@dataclass(frozen=True)
class OrderPlan:
    """What the client does with one order, drawn from the seeded generator up front."""

    order_id: int
    amount: int
    replay_create: bool
    duplicate_create: bool
    refund: bool
    replay_refund: bool
    duplicate_refund: bool
    read: bool


def make_plans(rng: random.Random) -> list[OrderPlan]:
    plans = []
    for order_id in range(1, ORDERS + 1):
        declined = rng.random() < 0.08
        plans.append(
            OrderPlan(
                order_id=order_id,
                amount=DECLINED_AMOUNT if declined else rng.randrange(100, 1_000_001),
                replay_create=rng.random() < 0.10,
                duplicate_create=rng.random() < 0.06,
                refund=rng.random() < 0.30,
                replay_refund=rng.random() < 0.20,
                duplicate_refund=rng.random() < 0.20,
                read=rng.random() < 0.10,
            )
        )
    return plans


def kill_points(rng: random.Random) -> list[int]:
    """Numbers of finished orders at which to kill: random, at least 5% of the load apart."""
    gap = ORDERS // 20
    while True:
        points = sorted(rng.sample(range(ORDERS // 20, ORDERS * 19 // 20), KILLS_UNDER_LOAD))
        if all(b - a >= gap for a, b in itertools.pairwise(points)):
            return points


@dataclass
class Answer:
    status: int
    body: Any
    replayed: bool  # the Idempotent-Replayed header
    # An earlier attempt was cut off (the server may have acted on it).
    interrupted: bool
    # The service's incarnation the answering attempt was sent to.
    epoch: int

    @property
    def problem(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("type", "")).rsplit("/", 1)[-1]
        return ""


@dataclass
class Tally:
    requests: int = 0
    creates: int = 0
    refunds: int = 0
    declined: int = 0
    duplicates_refused: int = 0
    replays_identical: int = 0
    # A replay whose key's stored answer died with the service: it ran again.
    replays_rerun: int = 0
    reads: int = 0
    connection_failures: int = 0
    keys_in_use: int = 0
    answered_after_interruption: int = 0
    # Creates whose cut-off attempt had stored the payment: the retry found it (400).
    creates_found_own_payment: int = 0
    server_errors: list[str] = field(default_factory=list)
    timeouts: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


class Driver:
    """The client: 32 workers, each driving its share of the orders one after another."""

    def __init__(self, service: ServiceProcess, client: httpx.AsyncClient) -> None:
        self.service = service
        self.client = client
        self.up = asyncio.Event()
        self.up.set()
        self.epoch = 0
        self.orders_done = 0
        self.progress = asyncio.Event()  # set whenever an order is done
        self.tally = Tally()
        self.restart_seconds: list[float] = []
        # order_id -> the status the payment must end with.
        self.expected_status: dict[int, str] = {}
        # order_id -> payment id, for the orders whose create was answered 201 or 402.
        self.payment_ids: dict[int, int] = {}

    async def send(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> Answer:
        headers = {"Idempotency-Key": key} if key else {}
        interrupted = False
        deadline = time.monotonic() + ANSWER_WITHIN_SECONDS
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{method} {path} {body}: no answer in {ANSWER_WITHIN_SECONDS}s"
                )
            await self.up.wait()
            epoch = self.epoch
            try:
                response = await self.client.request(method, path, json=body, headers=headers)
            except httpx.TimeoutException as exc:
                self.tally.timeouts.append(f"{method} {path} {body}: {exc!r}")
                interrupted = True
                continue
            except httpx.TransportError:
                # The service died under this request (or is not back yet): try again.
                self.tally.connection_failures += 1
                interrupted = True
                await asyncio.sleep(0.05)
                continue
            self.tally.requests += 1
            answer = Answer(
                status=response.status_code,
                body=_decode(response),
                replayed=response.headers.get("idempotent-replayed") == "true",
                interrupted=interrupted,
                epoch=epoch,
            )
            if answer.status == 409 and answer.problem == "idempotency-key-in-use":
                # The attempt the kill cut off still holds the key until its lock expires.
                self.tally.keys_in_use += 1
                await asyncio.sleep(0.2)
                continue
            if answer.status >= 500:
                self.tally.server_errors.append(
                    f"{method} {path} {body}: {answer.status} {answer.body}"
                )
                interrupted = True
                await asyncio.sleep(0.2)
                continue
            if interrupted:
                self.tally.answered_after_interruption += 1
            return answer

    def unexpected(self, what: str, answer: Answer) -> None:
        self.tally.unexpected.append(
            f"{what}: {answer.status} {answer.body} (after a cut-off attempt: {answer.interrupted})"
        )

    async def work(self, plans: list[OrderPlan]) -> None:
        for plan in plans:
            await self.drive(plan)
            self.orders_done += 1
            self.progress.set()

    async def drive(self, plan: OrderPlan) -> None:
        order_id = plan.order_id
        body = {"order_id": order_id, "amount": plan.amount, "currency": "JPY"}
        key = f"crash-create-{order_id}"
        created = await self.send("POST", PAYMENTS, body, key)
        self.tally.creates += 1
        declined = plan.amount == DECLINED_AMOUNT
        self.expected_status[order_id] = "FAILED" if declined else "COMPLETED"
        payment_id: int | None = None
        if created.status == 201 and not declined:
            b = created.body
            if (b["order_id"], b["amount"], b["status"]) != (order_id, plan.amount, "COMPLETED"):
                self.unexpected(f"order {order_id}: create", created)
            payment_id = int(b["id"])
        elif created.status == 402 and declined and created.problem == "payment-declined":
            self.tally.declined += 1
            payment_id = int(created.body["payment_id"])
        elif not (created.status == 400 and created.problem == "duplicate-order"):
            self.unexpected(f"order {order_id}: create", created)
        elif not created.interrupted:
            # Only a create whose earlier attempt was cut off may find its own payment.
            self.unexpected(f"order {order_id}: create", created)
        else:
            self.tally.creates_found_own_payment += 1
        if payment_id is not None:
            self.payment_ids[order_id] = payment_id

        if plan.replay_create:
            replay = await self.send("POST", PAYMENTS, body, key)
            self.check_replay(
                f"order {order_id}: create replay", created, replay, "duplicate-order"
            )
        if plan.duplicate_create:
            again = await self.send("POST", PAYMENTS, {"order_id": order_id, "amount": 1000})
            if again.status == 400 and again.problem == "duplicate-order":
                self.tally.duplicates_refused += 1
            else:
                self.unexpected(f"order {order_id}: duplicate create", again)

        if plan.refund and payment_id is not None and not declined:
            await self.refund(plan, payment_id)
        if plan.read and payment_id is not None:
            read = await self.send("GET", f"/api/v1/payments/{payment_id}")
            self.tally.reads += 1
            expected = self.expected_status[order_id]
            if read.status != 200 or (read.body["order_id"], read.body["status"]) != (
                order_id,
                expected,
            ):
                self.unexpected(f"order {order_id}: read (expected {expected})", read)

    async def refund(self, plan: OrderPlan, payment_id: int) -> None:
        order_id = plan.order_id
        body = {"payment_id": payment_id, "reason": "crash-safety test"}
        key = f"crash-refund-{payment_id}"
        refunded = await self.send("POST", REFUNDS, body, key)
        self.tally.refunds += 1
        self.expected_status[order_id] = "REFUNDED"
        if refunded.status == 201:
            if (refunded.body["payment_id"], refunded.body["amount"]) != (payment_id, plan.amount):
                self.unexpected(f"order {order_id}: refund", refunded)
        elif not (
            refunded.status == 400 and refunded.problem == "not-refundable" and refunded.interrupted
        ):
            self.unexpected(f"order {order_id}: refund", refunded)
        if plan.replay_refund:
            replay = await self.send("POST", REFUNDS, body, key)
            self.check_replay(
                f"order {order_id}: refund replay", refunded, replay, "not-refundable"
            )
        if plan.duplicate_refund:
            again = await self.send("POST", REFUNDS, {"payment_id": payment_id, "reason": "again"})
            if again.status == 400 and again.problem == "not-refundable":
                self.tally.duplicates_refused += 1
            else:
                self.unexpected(f"order {order_id}: second refund", again)

    def check_replay(self, what: str, first: Answer, replay: Answer, rerun_problem: str) -> None:
        """The same key and body answer the first response again, marked as a replay.

        Only when a kill fell between the two may the first response have died
        unstored with the service; the request then runs again and finds its own work.
        """
        if replay.replayed and (replay.status, replay.body) == (first.status, first.body):
            self.tally.replays_identical += 1
            return
        crash_between = replay.interrupted or replay.epoch != first.epoch
        if crash_between and replay.status == 400 and replay.problem == rerun_problem:
            self.tally.replays_rerun += 1
            return
        self.unexpected(f"{what} (first answer {first.status} {first.body})", replay)

    async def crash_and_restart(self) -> None:
        self.up.clear()
        self.epoch += 1
        self.service.kill()
        self.service.start()
        self.restart_seconds.append(await self.service.wait_ready(60))
        self.up.set()

    async def crash_at(self, points: list[int], rng: random.Random) -> None:
        for point in points:
            while self.orders_done < point:
                self.progress.clear()
                await self.progress.wait()
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            await self.crash_and_restart()


def _decode(response: httpx.Response) -> Any:
    try:
        return response.json()
    except json.JSONDecodeError:
        return response.text[:300]


@pytest.fixture
def service_process(
    tmp_path: Path, database_url: str, order_stub: OrderServiceStub
) -> Iterator[ServiceProcess]:
    config = tmp_path / "payments.toml"
    config.write_text(CONFIG, encoding="utf-8")
    process = ServiceProcess(
        port=free_port(),
        env=service_env(config, database_url, order_stub.url),
        log=tmp_path / "service.log",
    )
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.slow
async def test_sigkill_under_load_loses_nothing(
    service_process: ServiceProcess, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    rng = random.Random(SEED)
    plans = make_plans(rng)
    points = kill_points(rng)
    started = time.monotonic()
    service_process.start()
    await service_process.wait_ready(60)

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=service_process.url, timeout=REQUEST_TIMEOUT_SECONDS, limits=limits
    ) as client:
        driver = Driver(service_process, client)
        crashes = asyncio.create_task(driver.crash_at(points, rng))
        try:
            await asyncio.gather(*(driver.work(plans[i::CONCURRENCY]) for i in range(CONCURRENCY)))
            await crashes  # every planned kill happened while the load ran
        finally:
            crashes.cancel()
        load_seconds = time.monotonic() - started
        # The final crash: right after the load, while the relay delivers the tail.
        await driver.crash_and_restart()
    tally = driver.tally

    async def reconciled() -> bool:
        return await checks.count_processing_payments(db) == 0

    async def outbox_settled() -> bool:
        return (await checks.outbox_counts(db))["pending"] == 0

    await wait_until(reconciled, 60, "no payment PROCESSING")
    await wait_until(outbox_settled, 90, "no outbox event waiting for delivery")
    await asyncio.to_thread(service_process.stop)

    # The client's view: every answer was one the contract allows, none hung, no 5xx.
    assert tally.unexpected == []
    assert tally.server_errors == []
    assert tally.timeouts == []
    # The kills landed under load: requests were cut off, retried and answered.
    assert service_process.kills == KILLS_UNDER_LOAD + 1
    assert tally.answered_after_interruption > 0

    # No order paid twice; every order the client paid exists exactly once.
    assert [dict(r) async for r in checks.orders_paid_more_than_once(db)] == []
    payments = [r async for r in checks.all_payments(db)]
    assert sorted(r["order_id"] for r in payments) == [p.order_id for p in plans]
    by_order = {r["order_id"]: r for r in payments}
    for order_id, payment_id in driver.payment_ids.items():
        assert by_order[order_id]["id"] == payment_id

    # Nothing PROCESSING, and each payment ended as the client's answers say it must
    # (an acknowledged refund is REFUNDED, a declined amount FAILED, the rest COMPLETED).
    assert await checks.count_processing_payments(db) == 0
    lost = {
        order_id: (expected, by_order[order_id]["status"])
        for order_id, expected in driver.expected_status.items()
        if by_order[order_id]["status"] != expected
    }
    assert lost == {}

    # Each payment has exactly the outbox events its status implies, in seq order,
    # and exactly one refund if REFUNDED (none otherwise).
    trails = [r async for r in checks.payment_trails(db)]
    wrong_events = {
        r["id"]: (r["status"], list(r["event_statuses"]))
        for r in trails
        if list(r["event_statuses"]) != EXPECTED_EVENTS.get(r["status"])
    }
    assert wrong_events == {}
    wrong_refunds = {
        r["id"]: (r["status"], r["refunds"])
        for r in trails
        if r["refunds"] != (1 if r["status"] == "REFUNDED" else 0)
    }
    assert wrong_refunds == {}
    assert [dict(r) async for r in checks.refunds_without_refunded_payment(db)] == []

    # Every event delivered (none dead), and accepted by the Order Service stub at least
    # once under its webhook-id, with the body it stands for, on its order's URL.
    counts = await checks.outbox_counts(db)
    events = [r async for r in checks.all_outbox_events_decoded(db)]
    assert (counts["pending"], counts["dead"], counts["delivered"]) == (0, 0, len(events))
    assert all(e["delivered_at"] is not None for e in events)
    accepted = list(order_stub.accepted)
    accepted_ids = [call.webhook_id for call in accepted]
    event_by_id = {e["id"]: e for e in events}
    assert set(accepted_ids) == set(event_by_id)
    mismatched = [
        call.webhook_id
        for call in accepted
        if call.order_id != event_by_id[call.webhook_id]["order_id"]
        or call.body
        != {
            "payment_status": event_by_id[call.webhook_id]["payment_status"],
            "transaction_id": event_by_id[call.webhook_id]["transaction_id"],
        }
    ]
    assert mismatched == []

    # Per order, the stub accepted `completed` before `refunded` (first acceptances).
    first_accepted: dict[str, int] = {}
    for index, webhook_id in enumerate(accepted_ids):
        first_accepted.setdefault(webhook_id, index)
    out_of_order = [
        r["order_id"]
        for r in trails
        if r["status"] == "REFUNDED"
        and first_accepted[r["event_ids"][0]] > first_accepted[r["event_ids"][1]]
    ]
    assert out_of_order == []

    statuses = Counter(r["status"] for r in payments)
    reconciled_count = sum(1 for e in events if e["request_id"] == "reconciler")
    duplicates = len(accepted_ids) - len(set(accepted_ids))
    print(
        f"\ncrash safety: {len(plans)} orders driven ({tally.creates} creates, "
        f"{tally.refunds} refunds, {tally.duplicates_refused} duplicates refused, "
        f"{tally.replays_identical} Idempotency-Key replays identical, "
        f"{tally.replays_rerun} re-run after a kill, {tally.reads} reads), "
        f"{tally.requests} HTTP answers in {load_seconds:.1f}s at {CONCURRENCY} in flight\n"
        f"kills survived: {service_process.kills} SIGKILLs (restarts ready in "
        f"{', '.join(f'{s:.1f}' for s in driver.restart_seconds)} s); "
        f"{tally.connection_failures} attempts cut off, "
        f"{tally.answered_after_interruption} requests answered after a retry, "
        f"{tally.keys_in_use} 409 key-in-use waits, {tally.creates_found_own_payment} "
        f"retried creates found the payment their cut-off attempt stored, "
        f"{reconciled_count} payments settled by the reconciler\n"
        f"payments: {dict(sorted(statuses.items()))}; none PROCESSING; "
        f"{len(events)} outbox events, {counts['attempts']} delivery attempts\n"
        f"webhooks accepted: {len(accepted_ids)} ({len(set(accepted_ids))} distinct, "
        f"{duplicates} duplicates delivered); lost: {len(lost)} payments, "
        f"{len(set(event_by_id) - set(accepted_ids))} webhooks"
    )
