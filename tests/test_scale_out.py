"""The README's "Running at scale", checked: three service processes and two standalone
relays on one primary, reads through a streaming replica, one instance killed mid-run.

Each instance runs as in production (`payments serve`, no relay inside:
`[outbox] relay_in_process = false`), beside two `payments relay` processes; reads go
to a real standby (tests/support/standby.py). Clients spread the orders over the
three; one instance is SIGKILLed a third of the way through, and the clients whose
requests it cut off (or that it no longer answers) retry on another instance with
the same Idempotency-Key. Afterwards: every order paid once, every webhook
delivered (a repeat only ever as the same webhook-id), each order's in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.order_stub import OrderServiceStub
from tests.support.paths import PROJECT_ROOT
from tests.support.postgres import TestPostgres
from tests.support.processes import PAYMENTS, ServiceProcess, service_env
from tests.support.relay_helpers import wait_all_delivered, wait_until
from tests.support.service import free_port
from tests.support.sql import load_test_queries
from tests.support.standby import Standby, is_embedded, streaming_standby

checks: Any = load_test_queries()

ORDERS = 600
CONCURRENCY = 24
REFUND_EVERY = 4  # every 4th order is refunded too, through another instance
ANSWER_WITHIN_SECONDS = 120.0

# No relay inside the instances: the two `payments relay` processes deliver. Short
# leases, reconciliation and idempotency locks, so that what the killed instance
# held frees up within the test.
CONFIG = """
[outbox]
relay_in_process = false
poll_interval_seconds = 0.2
lease_seconds = 3.0
request_timeout_seconds = 1.0
retry_schedule_seconds = [0.2, 0.5, 1, 1, 1, 1, 1, 1, 1, 1]

[gateway]
charge_timeout_seconds = 0.5
reconcile_after_seconds = 1.0
reconcile_interval_seconds = 0.5

[idempotency]
lock_seconds = 3.0

[database]
read_probe_interval_seconds = 0.2
read_max_lag_seconds = 5.0
"""


@pytest.fixture
def standby(postgres: TestPostgres, database_url: str) -> Iterator[Standby]:
    if not is_embedded(postgres.admin_url):
        pytest.skip("a standby is made from the embedded test server's data directory")
    with streaming_standby(postgres.admin_url) as running:
        yield running


@contextlib.asynccontextmanager
async def cluster(
    tmp_path: Path, env: dict[str, str], instances: int, relays: int
) -> AsyncIterator[list[ServiceProcess]]:
    """Several `payments serve` and `payments relay` processes; all stopped afterwards."""
    services = [
        ServiceProcess(port=free_port(), env=env, log=tmp_path / f"service-{n}.log")
        for n in range(instances)
    ]
    relay_processes: list[asyncio.subprocess.Process] = []
    try:
        for service in services:
            service.start()
        for n in range(relays):
            with (tmp_path / f"relay-{n}.log").open("ab") as log:
                relay_processes.append(
                    await asyncio.create_subprocess_exec(
                        *PAYMENTS, "relay", env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log
                    )
                )
        await asyncio.gather(*(service.wait_ready() for service in services))
        yield services
    finally:
        for relay in relay_processes:
            relay.terminate()
        for service in services:
            service.stop()
        for relay in relay_processes:
            await asyncio.wait_for(relay.wait(), 20)


class Clients:
    """Sends each request to its preferred instance, and on to the next on failure."""

    def __init__(self, urls: list[str]) -> None:
        self.clients = [httpx.AsyncClient(base_url=url, timeout=10) for url in urls]
        self.retried = 0

    async def call(
        self, prefer: int, method: str, path: str, body: Any = None, key: str | None = None
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        deadline = time.monotonic() + ANSWER_WITHIN_SECONDS
        for n in itertools.count(prefer):
            client = self.clients[n % len(self.clients)]
            with contextlib.suppress(httpx.TransportError):
                answer = await client.request(method, path, json=body, headers=headers)
                # 409: the key is held by a request the killed instance was running.
                if answer.status_code < 500 and answer.status_code != 409:
                    return answer
            self.retried += 1
            assert time.monotonic() < deadline, f"{method} {path}: no answer in time"
            await asyncio.sleep(0.05)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self.clients))


async def reads_from_replica(client: httpx.AsyncClient) -> bool:
    return bool((await client.get("/health/ready")).json()["reads"] == "replica")


def replica_reads(metrics: str) -> float:
    """payments_reads_total{source="replica"} of a Prometheus text page."""
    wanted = 'payments_reads_total{source="replica"}'
    return sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(wanted))


async def settled(clients: Clients, order_id: int) -> None:
    async def completed() -> bool:
        read = await clients.call(order_id, "GET", f"/api/v1/payments/order/{order_id}")
        return bool(read.json()["status"] == "COMPLETED")

    await wait_until(completed, 30, f"order {order_id} settled")


@pytest.mark.slow
async def test_three_instances_two_relays_and_a_replica_lose_nothing_when_one_is_killed(
    tmp_path: Path, database_url: str, order_stub: OrderServiceStub, standby: Standby
) -> None:
    config = tmp_path / "payments.toml"
    config.write_text(CONFIG, encoding="utf-8")
    env = service_env(config, database_url, order_stub.url)
    env["PAYMENTS_READ_DATABASE_URL"] = standby.url_like(database_url)

    async with cluster(tmp_path, env, instances=3, relays=2) as services:
        clients = Clients([service.url for service in services])
        for client in clients.clients:
            assert (await client.get("/health/ready")).json()["relay"] == "off"
            await wait_until(partial(reads_from_replica, client), 30, "reads from the replica")
        answered = 0
        killed = asyncio.Event()
        limit = asyncio.Semaphore(CONCURRENCY)

        async def order(n: int) -> tuple[int, int, int | None]:
            nonlocal answered
            async with limit:
                created = await clients.call(
                    n, "POST", "/api/v1/payments/", {"order_id": n, "amount": 1000 + n}, f"o{n}"
                )
                answered += 1
                if answered == ORDERS // 3 and not killed.is_set():
                    killed.set()
                    services[0].kill()
                # Read back at once through another instance: from the replica, or
                # from the primary when the replica has not replayed it yet.
                read = await clients.call(n + 1, "GET", f"/api/v1/payments/order/{n}")
                refunded = None
                if n % REFUND_EVERY == 0:
                    await settled(clients, n)  # a create the kill cut off: reconciled soon
                    body = {"payment_id": created.json()["id"], "reason": "scale-out"}
                    path = "/api/v1/payments/refund"
                    refund = await clients.call(n + 2, "POST", path, body, f"r{n}")
                    refunded = refund.status_code
                return created.status_code, read.status_code, refunded

        outcomes = await asyncio.gather(*(order(n) for n in range(1, ORDERS + 1)))
        assert killed.is_set() and not services[0].running

        # Every order paid and read back at once; every refund made.
        assert {created for created, _, _ in outcomes} == {201}
        assert {read for _, read, _ in outcomes} == {200}
        assert {refund for _, _, refund in outcomes if refund is not None} == {201}

        assert clients.retried > 0  # some clients met the killed instance and went on

        # The survivors served reads from the replica; none turned unready.
        for client in clients.clients[1:]:
            ready = (await client.get("/health/ready")).json()
            assert ready["status"] == "ready" and ready["reads"] in {"replica", "primary"}
            assert replica_reads((await client.get("/metrics")).text) > 0
        await clients.close()

        primary = await asyncpg.connect(database_url)
        try:
            await wait_all_delivered(primary, within=120)
            payments = [row async for row in checks.all_payments(primary)]
            events = [row async for row in checks.all_outbox_events_decoded(primary)]
        finally:
            await primary.close()

    # Every order paid exactly once, refunded where asked.
    assert sorted(row["order_id"] for row in payments) == list(range(1, ORDERS + 1))
    expected = {
        n: "REFUNDED" if n % REFUND_EVERY == 0 else "COMPLETED" for n in range(1, ORDERS + 1)
    }
    assert {row["order_id"]: row["status"] for row in payments} == expected

    # Every event reached the Order Service; a repeat only as the same webhook-id and body.
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for call in order_stub.accepted:
        bodies[call.webhook_id].add(call.raw_body)
    assert {event["id"] for event in events} <= set(bodies)
    assert all(len(sent) == 1 for sent in bodies.values())

    # Each order's events arrived in the order they happened.
    for n in range(1, ORDERS + 1):
        first_seen = dict.fromkeys(call.webhook_id for call in order_stub.accepted_for(n))
        statuses = [
            json.loads(min(bodies[webhook_id]))["payment_status"] for webhook_id in first_seen
        ]
        wanted = ["completed", "refunded"] if n % REFUND_EVERY == 0 else ["completed"]
        assert statuses == wanted
