"""Database outage: PostgreSQL stopped and started under load; the service is never restarted.

The test runs a PostgreSQL of its own (pgserver in a directory of its own) so that it can stop and
start it with pg_ctl exactly as pgserver does. While it is down every request must be
answered at once with 503 problem+json (no hang, no 500, no traceback) and readiness
must say so; once it is back the pool and the relay's LISTEN connection must come back
by themselves: creates succeed, readiness is 200, every webhook is delivered, and no
payment is left PROCESSING.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from service.db.embedded import bin_dir
from service.db.migrate import migrate
from service.outbox.listener import APPLICATION_NAME
from tests.support.order_stub import OrderServiceStub
from tests.support.paths import server_directory
from tests.support.postgres import with_database
from tests.support.relay_helpers import FAST_OUTBOX, wait_until
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()

CLIENTS = 6
# "Did not hang": every answer, 503s included, must come within this.
ANSWER_WITHIN_SECONDS = 10.0
OUTAGE_SECONDS = 4.0
RECOVER_WITHIN_SECONDS = 45.0
PAYMENTS = "/api/v1/payments/"


class PrivatePostgres:
    """A pgserver of the test's own, stopped and started with pg_ctl as pgserver starts it."""

    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
            from pgserver._commands import pg_ctl
            from pgserver.utils import PostmasterInfo

        self._pg_ctl = pg_ctl
        self._postmaster_info = PostmasterInfo.read_from_pgdata
        self.server = pgserver.get_server(pgdata, cleanup_mode="delete")
        self.pgdata = self.server.pgdata
        self.socket_dir = self.server.get_postmaster_info().socket_dir
        # As root pgserver runs postgres as its own user "pgserver"; pg_ctl must too.
        self.user = self.server.system_user
        self.admin_url: str = self.server.get_uri("postgres")

    def running(self) -> bool:
        info = self._postmaster_info(self.pgdata)
        return info is not None and info.is_running()

    def stop(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.user, timeout=60)
        # pgserver's clean-up stops the postmaster it knows of: none now.
        self.server._postmaster_info = None

    def start(self) -> None:
        # pgserver's own options: no TCP, the same socket directory, the same log.
        args = ["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.server.log)]
        self._pg_ctl([*args, "start"], pgdata=self.pgdata, user=self.user, timeout=60)
        # pgserver's clean-up stops the postmaster it knows of: this one now.
        self.server._postmaster_info = self._postmaster_info(self.pgdata)

    def create_database(self, name: str) -> str:
        subprocess.run(
            [str(bin_dir() / "createdb"), f"--maintenance-db={self.admin_url}", name],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return with_database(self.admin_url, name)

    def close(self) -> None:
        try:
            if self.running():
                self.stop()
        finally:
            self.server.cleanup()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    with server_directory("payments-outage-") as directory:
        postgres = PrivatePostgres(directory / "pg")
        try:
            yield postgres
        finally:
            postgres.close()


@dataclass(frozen=True)
class Call:
    what: str  # "create" | "read" | "read-order"
    order_id: int
    sent_in: str  # the phase when sent
    answered_in: str  # the phase when answered (or timed out)
    status: int | None  # None: no answer (timeout or connection error)
    content_type: str
    body: Any
    text: str
    seconds: float

    @property
    def problem(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("type", "")).rsplit("/", 1)[-1]
        return ""

    @property
    def brief(self) -> str:
        return (
            f"{self.what} order {self.order_id} ({self.sent_in} -> {self.answered_in}): "
            f"{self.status} {self.text[:160]!r} in {self.seconds:.2f}s"
        )

    @property
    def is_database_unavailable(self) -> bool:
        return (
            self.status == 503
            and self.content_type.startswith("application/problem+json")
            and self.problem == "database-unavailable"
        )

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Load:
    """A few clients creating payments (half of them with an Idempotency-Key) and reading."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.phase = "before"
        self.calls: list[Call] = []
        self.orders = itertools.count(1)
        self.created: dict[int, int] = {}  # order_id -> payment id, answered 201
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def call(self, what: str, order_id: int, method: str, path: str, **kw: Any) -> Call:
        sent_in = self.phase
        started = time.monotonic()
        try:
            response = await self.client.request(method, path, **kw)
        except httpx.TransportError as exc:
            status, content_type, body, text = None, "", None, repr(exc)
        else:
            status, content_type = response.status_code, response.headers.get("content-type", "")
            text = response.text
            try:
                body = response.json()
            except ValueError:
                body = None
        call = Call(
            what=what,
            order_id=order_id,
            sent_in=sent_in,
            answered_in=self.phase,
            status=status,
            content_type=content_type,
            body=body,
            text=text,
            seconds=time.monotonic() - started,
        )
        self.calls.append(call)
        return call

    async def create(self) -> Call:
        order_id = next(self.orders)
        headers = {"Idempotency-Key": f"outage-{order_id}"} if order_id % 2 else {}
        body = {"order_id": order_id, "amount": 1000 + order_id}
        call = await self.call("create", order_id, "POST", PAYMENTS, json=body, headers=headers)
        if call.status == 201:
            self.created[order_id] = int(call.body["id"])
        return call

    async def client_loop(self, number: int) -> None:
        while not self._stop.is_set():
            await self.create()
            known = list(self.created.items())
            if known:
                order_id, payment_id = known[(number * 7 + len(known)) % len(known)]
                await self.call("read", order_id, "GET", f"/api/v1/payments/{payment_id}")
                await self.call("read-order", order_id, "GET", f"/api/v1/payments/order/{order_id}")
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self.client_loop(n)) for n in range(CLIENTS)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


@pytest.fixture
async def outage_service(
    private_postgres: PrivatePostgres, order_stub: OrderServiceStub
) -> AsyncIterator[tuple[RunningService, str]]:
    url = private_postgres.create_database("payments")
    await migrate(url)
    settings = make_settings(
        url,
        order_stub.url,
        database={"command_timeout": 2.0},
        gateway={
            "charge_timeout_seconds": 0.5,
            "reconcile_after_seconds": 1.0,
            "reconcile_interval_seconds": 0.5,
        },
        outbox=FAST_OUTBOX,
    )
    async with serve(settings) as running:
        yield running, url


async def _probe(client: httpx.AsyncClient, path: str) -> tuple[int | None, dict[str, Any]]:
    """A health endpoint's status and body; (None, {"error": ...}) when it gave no answer."""
    try:
        response = await client.get(path)
    except httpx.TransportError as exc:
        return None, {"error": repr(exc)}
    return response.status_code, response.json()


@pytest.mark.slow
async def test_service_rides_out_a_database_restart(
    outage_service: tuple[RunningService, str],
    private_postgres: PrivatePostgres,
    order_stub: OrderServiceStub,
) -> None:
    running, url = outage_service
    async with httpx.AsyncClient(base_url=running.url, timeout=ANSWER_WITHIN_SECONDS) as client:
        load = Load(client)
        load.start()
        try:
            await wait_until(lambda: _created(load, 20), 30, "payments created before the outage")

            # PostgreSQL goes away under load.
            load.phase = "stopping"
            await asyncio.to_thread(private_postgres.stop)
            load.phase = "down"
            down_since = time.monotonic()
            await asyncio.sleep(1.0)
            ready_down = await _probe(client, "/health/ready")
            live_down = await _probe(client, "/health/live")
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_since)))
            down_for = time.monotonic() - down_since

            # And comes back; the service is not touched.
            load.phase = "starting"
            await asyncio.to_thread(private_postgres.start)
            load.phase = "back"
            back_since = time.monotonic()
            created_before_back = len(load.created)
            await wait_until(
                lambda: _created(load, created_before_back + 1),
                RECOVER_WITHIN_SECONDS,
                "a create answered 201 after PostgreSQL came back",
            )
            time_to_recover = time.monotonic() - back_since

            async def ready() -> bool:
                return (await _probe(client, "/health/ready"))[0] == 200

            await wait_until(ready, RECOVER_WITHIN_SECONDS, "/health/ready answering 200")
            ready_back = await _probe(client, "/health/ready")
            load.phase = "recovered"
            created_at_recovery = len(load.created)
            await wait_until(
                lambda: _created(load, created_at_recovery + 20),
                30,
                "payments created after recovery",
            )
        finally:
            await load.stop()

    connection = await asyncpg.connect(url)
    try:
        # A create cut off by the outage is settled by the reconciler, never left half-done.
        async def reconciled() -> bool:
            return await checks.count_processing_payments(connection) == 0

        # The relay came back too: its LISTEN connection is open on the restarted server,
        # and every webhook is delivered, those committed before the outage included.
        async def listening() -> bool:
            backends = checks.sessions_of_application(connection, application_name=APPLICATION_NAME)
            return len([row async for row in backends]) > 0

        async def delivered() -> bool:
            return (await checks.outbox_counts(connection))["pending"] == 0

        await _eventually(reconciled, 30)
        listening_in_time = await _eventually(listening, 30)
        await _eventually(delivered, 30)
        processing = await checks.count_processing_payments(connection)
        counts = await checks.outbox_counts(connection)
        events = [r async for r in checks.all_outbox_events_decoded(connection)]
        payments = [r async for r in checks.all_payments(connection)]
    finally:
        await connection.close()

    calls = load.calls
    accepted = {call.webhook_id for call in order_stub.accepted}
    paid = {p["order_id"]: p["id"] for p in payments}
    event_of_payment = {e["payment_id"]: e["id"] for e in events}
    # Creates answered 201 before the outage, and after recovery.
    before = [c.order_id for c in calls if c.what == "create" and c.sent_in == "before"]
    after = [c.order_id for c in calls if c.what == "create" and c.answered_in == "recovered"]
    acknowledged = [o for o in before + after if o in load.created]
    steady = [c for c in calls if {c.sent_in, c.answered_in} <= {"before", "recovered"}]
    during = [c for c in calls if c.sent_in == "down" and c.answered_in == "down"]
    answered = [c for c in calls if c.status is not None]
    outage_calls = [c for c in calls if "down" in (c.sent_in, c.answered_in)]
    unavailable = [c for c in outage_calls if c.is_database_unavailable]
    failed_creates = {c.order_id for c in calls if c.what == "create" and c.status == 503}
    reconciled_count = sum(1 for e in events if e["request_id"] == "reconciler")
    print(
        f"\ndatabase outage: {len(calls)} requests in all; PostgreSQL down {down_for:.1f}s: "
        f"{len(outage_calls)} requests during the outage, {len(unavailable)} answered 503 "
        f"database-unavailable, slowest 503 in "
        f"{max((c.seconds for c in unavailable), default=0.0):.3f}s; "
        f"{sum(1 for c in calls if c.status == 503)} 503s and "
        f"{sum(1 for c in calls if c.status == 500)} 500s in all, "
        f"{len(calls) - len(answered)} requests without an answer\n"
        f"recovered {time_to_recover:.2f}s after PostgreSQL was back (first 201); "
        f"{len(payments)} payments, {len(failed_creates)} creates answered 503, "
        f"{len(failed_creates & set(paid))} of them had stored a payment, "
        f"{reconciled_count} settled by the reconciler, {processing} left PROCESSING; "
        f"{counts['delivered']} of {len(events)} webhooks delivered, "
        f"{len(order_stub.accepted)} accepted by the stub"
    )

    broken: dict[str, object] = {
        # Never a hang, never a dropped connection, never a 500, never a traceback.
        "no answer (timeout or dropped connection)": [c.brief for c in calls if c.status is None],
        "slower than the did-not-hang bound": [
            c.brief for c in calls if c.seconds >= ANSWER_WITHIN_SECONDS
        ],
        "500 or traceback": [c.brief for c in calls if c.status == 500 or "Traceback" in c.text],
        # Before the outage and once recovered, everything works.
        "failed outside the outage": [c.brief for c in steady if not c.succeeded],
        "no request before or after the outage": not steady,
        # While it is down, every call is a quick 503 database-unavailable problem.
        "no request while the database was down": not during,
        "not a 503 database-unavailable while down": [
            c.brief for c in during if not c.is_database_unavailable
        ],
        # Around the transitions, a call either worked or was told the database is down.
        "neither worked nor 503 database-unavailable": [
            c.brief for c in answered if not (c.succeeded or c.is_database_unavailable)
        ],
        "readiness while down": (ready_down[0], ready_down[1].get("status"))
        != (503, "unavailable"),
        "liveness while down": live_down != (200, {"status": "alive"}),
        "readiness after recovery": (ready_back[0], ready_back[1].get("database")) != (200, "ok"),
        # Nothing half-done, the relay's listener back, every webhook delivered.
        "payments left PROCESSING": processing,
        "relay LISTEN connection not back": not listening_in_time,
        "webhooks not delivered (pending, dead)": (counts["pending"], counts["dead"])
        if counts["pending"] or counts["dead"]
        else None,
        "payments not COMPLETED": [p["id"] for p in payments if p["status"] != "COMPLETED"],
        "payments without their event": sorted(set(paid.values()) - set(event_of_payment)),
        "events the stub never accepted": sorted({e["id"] for e in events} - accepted),
        "acknowledged payments whose webhook is missing": [
            o for o in acknowledged if event_of_payment.get(paid.get(o, -1)) not in accepted
        ],
    }
    failures = {name: value for name, value in broken.items() if value}
    assert failures == {}, _describe(failures)


def _describe(failures: dict[str, object]) -> str:
    lines = []
    for name, value in failures.items():
        if isinstance(value, list):
            shown = "\n    ".join(str(item) for item in value[:8])
            more = f"\n    ... and {len(value) - 8} more" if len(value) > 8 else ""
            lines.append(f"{name} ({len(value)}):\n    {shown}{more}")
        else:
            lines.append(f"{name}: {value}")
    return "\n".join(lines)


async def _eventually(check: Any, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return bool(await check())


async def _created(load: Load, count: int) -> bool:
    return len(load.created) >= count
