"""The service, a standalone relay and the operators' commands through a real PgBouncer in
transaction pooling mode, with a pool of four server connections; LISTEN goes direct.

PgBouncer (Debian's package) is skipped where it is not installed, and fails the run
under CI, whose .ci/run installs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from service.outbox.listener import APPLICATION_NAME as LISTENER
from service.settings import ConfigError, DatabaseSettings, load_settings
from tests.support.order_stub import OrderServiceStub
from tests.support.paths import PROJECT_ROOT
from tests.support.pgbouncer import PgBouncer, require_pgbouncer
from tests.support.postgres import TestPostgres
from tests.support.processes import PAYMENTS, service_env
from tests.support.relay_helpers import wait_until
from tests.support.service import serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()
POOL_SIZE = 4
# Far longer than the test waits for any webhook: only a NOTIFY can wake the relay in time.
POLL_SECONDS = 60.0
ORDERS = 40
POOLER = "pgbouncer-transaction"


@pytest.fixture
def pgbouncer(postgres: TestPostgres) -> Iterator[PgBouncer]:
    require_pgbouncer()
    bouncer = PgBouncer(postgres.admin_url, pool_size=POOL_SIZE)
    try:
        yield bouncer.start()
    finally:
        bouncer.stop()


def payments_command(env: dict[str, str], *args: str) -> str:
    """A `payments` command as an operator types it; its output (it must succeed)."""
    run = subprocess.run(
        [*PAYMENTS, *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.fixture
def relay_env(
    tmp_path: Path, pgbouncer: PgBouncer, database_url: str, order_stub: OrderServiceStub
) -> dict[str, str]:
    """The environment of `payments` commands: through the pooler, LISTEN direct."""
    (config := tmp_path / "payments.toml").write_text(
        f"[outbox]\npoll_interval_seconds = {POLL_SECONDS}\n", encoding="utf-8"
    )
    env = service_env(config, pgbouncer.url_for(database_url), order_stub.url)
    env.update(PAYMENTS_DATABASE_POOLER=POOLER, PAYMENTS_DIRECT_DATABASE_URL=database_url)
    return env


@pytest.fixture
def relay_process(tmp_path: Path, relay_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """`payments relay` on its own, stopped (killed if need be) whatever the test's outcome."""
    with (tmp_path / "relay.log").open("wb") as log:
        relay = subprocess.Popen(
            [*PAYMENTS, "relay"],
            env=relay_env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield relay
    finally:
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(relay.pid, signal.SIGKILL)
            relay.wait(10)


@pytest.mark.slow  # a PgBouncer, the service and a relay process
async def test_service_relay_and_ops_work_through_pgbouncer_in_transaction_pooling(
    pgbouncer: PgBouncer,
    database_url: str,
    order_stub: OrderServiceStub,
    db: asyncpg.Connection,
    relay_env: dict[str, str],
    relay_process: subprocess.Popen[bytes],
) -> None:
    settings = make_settings(
        pgbouncer.url_for(database_url),
        order_stub.url,
        # Eight client connections from the start, sharing four server connections.
        database={
            "pooler": POOLER,
            "direct_url": database_url,
            "pool_min_size": 8,
            "pool_max_size": 8,
        },
        # The standalone relay delivers every webhook, woken by NOTIFY alone.
        outbox={"relay_in_process": False, "poll_interval_seconds": POLL_SECONDS},
    )

    async def relay_listens() -> bool:
        sessions = checks.sessions_of_application(db, application_name=LISTENER)
        return bool([session async for session in sessions])

    await wait_until(relay_listens, 30, "the relay's LISTEN connection (direct)")

    async with serve(settings) as service:
        client = service.client
        # Concurrent creates share commits (group commit) through the pooler.
        created = await asyncio.gather(
            *(
                client.post("/api/v1/payments/", json={"order_id": n, "amount": 1000 + n})
                for n in range(1, ORDERS + 1)
            )
        )
        assert [r.status_code for r in created] == [201] * ORDERS
        # The relay was idle, polling once a minute: the NOTIFY on its direct LISTEN
        # connection woke it, so every webhook came within a third of the poll interval.
        await order_stub.wait_for_accepted(ORDERS, POLL_SECONDS / 3)

        refunded = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/payments/refund",
                    json={"payment_id": created[n - 1].json()["id"], "reason": "pooled"},
                )
                for n in range(1, ORDERS + 1, 4)
            )
        )
        assert {r.status_code for r in refunded} == {201}

        # Idempotency keys hold across server connections: one payment, replayed answers.
        keyed = [
            await client.post(
                "/api/v1/payments/",
                json={"order_id": 5000, "amount": 700},
                headers={"Idempotency-Key": "pooled-key"},
            )
            for _ in range(3)
        ]
        assert [r.status_code for r in keyed] == [201] * 3
        assert len({r.json()["id"] for r in keyed}) == 1
        assert [r.headers.get("idempotent-replayed") for r in keyed[1:]] == ["true", "true"]

        # One order raced ten times: still one payment.
        raced = await asyncio.gather(
            *(
                client.post("/api/v1/payments/", json={"order_id": 6000, "amount": 500})
                for _ in range(10)
            )
        )
        assert sorted(r.status_code for r in raced) == [201] + [400] * 9

        events = ORDERS + len(refunded) + 2
        accepted = await order_stub.wait_for_accepted(events, POLL_SECONDS / 3)

        # Eight and more clients (the service's pool, the relay's), never more than
        # four server connections for them; the listener is a session of its own.
        pool = pgbouncer.pool(database_url)
        servers = sum(value for key, value in pool.items() if key.startswith("sv_"))
        assert pool["cl_active"] + pool["cl_waiting"] > 8 and servers <= POOL_SIZE, pool
        assert await checks.server_sessions_besides(db, application_name=LISTENER) <= POOL_SIZE

    # The operators' commands through the pooler too.
    timeline = payments_command(relay_env, "ops", "run", "ops_order_timeline", "order_id=1")
    assert "refunded" in timeline and "delivered" in timeline
    status = json.loads(payments_command(relay_env, "outbox", "status", "--json"))
    assert (status["pending"], status["delivered"]) == (0, events)

    carried = pgbouncer.stats(database_url)
    assert carried["total_xact_count"] >= ORDERS, carried

    ids = Counter(call.webhook_id for call in accepted)
    assert len(ids) == events and max(ids.values()) == 1  # each event once
    for n in range(1, ORDERS + 1, 4):
        statuses = [call.body["payment_status"] for call in order_stub.accepted_for(n)]
        assert statuses == ["completed", "refunded"]


def test_a_pooler_needs_a_direct_url_for_listen(tmp_path: Path) -> None:
    with pytest.raises(msgspec.ValidationError, match="direct_url"):
        msgspec.convert({"url": "postgresql://pooler/db", "pooler": POOLER}, DatabaseSettings)
    env = {
        "PAYMENTS_DATABASE_URL": "postgresql://pooler:6432/payments",
        "PAYMENTS_DATABASE_POOLER": POOLER,
    }
    with pytest.raises(ConfigError, match="direct_url"):
        load_settings(tmp_path / "none.toml", env)
    env["PAYMENTS_DIRECT_DATABASE_URL"] = "postgresql://primary:5432/payments"
    database = load_settings(tmp_path / "none.toml", env).database
    assert (database.pooler, database.direct_url) == (POOLER, "postgresql://primary:5432/payments")
