"""The read side on a real streaming standby (tests/support/standby.py).

Reads by id, by order and the list go to the standby while it keeps up; a row it
does not have yet is asked of the primary (read-your-writes); a standby that is
stopped or lags past the bound is skipped, and readiness says so; no read fails
for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from service.db.pool import create_pool
from service.db.reader import Reader, ReadSession
from service.db.replica_probe import ReplicaProbe
from service.db.sql import load_queries
from service.settings import ConfigError, DatabaseSettings, load_settings
from tests.support.order_stub import OrderServiceStub
from tests.support.postgres import TestPostgres
from tests.support.relay_helpers import wait_until
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries
from tests.support.standby import Standby, is_embedded, streaming_standby

checks = load_test_queries()


@pytest.fixture(scope="module")
def module_standby(postgres: TestPostgres) -> Iterator[Standby]:
    """One standby for the module: a copy of the whole test server takes seconds."""
    if not is_embedded(postgres.admin_url):
        pytest.skip("a standby is made from the embedded test server's data directory")
    with streaming_standby(postgres.admin_url) as running:
        yield running


@pytest.fixture
async def standby(module_standby: Standby, database_url: str) -> AsyncIterator[Standby]:
    """The standby running and replaying, this test's database on it; left so afterwards."""
    if not module_standby.running:
        module_standby.start()
    await module_standby.caught_up()
    yield module_standby
    if not module_standby.running:
        module_standby.start()
    await module_standby.resume_replay()


def reads(source: str) -> float:
    return REGISTRY.get_sample_value("payments_reads_total", {"source": source}) or 0.0


async def readiness(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/health/ready")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


async def wait_for_reads_from(client: httpx.AsyncClient, source: str, within: float = 30) -> None:
    async def there() -> bool:
        return (await readiness(client))["reads"] == source

    await wait_until(there, within, f"reads from the {source}")


@asynccontextmanager
async def serve_on(
    standby: Standby, database_url: str, stub: OrderServiceStub, max_lag: float = 30.0
) -> AsyncIterator[RunningService]:
    """The service reading from the standby (probed five times a second), once it does."""
    database = {
        "read_url": standby.url_like(database_url),
        "read_probe_interval_seconds": 0.2,
        "read_max_lag_seconds": max_lag,
    }
    async with serve(make_settings(database_url, stub.url, database=database)) as service:
        await wait_for_reads_from(service.client, "replica")
        yield service


@pytest.fixture
async def on_replica(
    database_url: str, order_stub: OrderServiceStub, standby: Standby
) -> AsyncIterator[RunningService]:
    async with serve_on(standby, database_url, order_stub) as service:
        yield service


@asynccontextmanager
async def standby_connection(
    standby: Standby, database_url: str
) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(standby.url_like(database_url))
    try:
        yield connection
    finally:
        await connection.close()


async def pay(client: httpx.AsyncClient, order_id: int) -> dict[str, Any]:
    created = await client.post("/api/v1/payments/", json={"order_id": order_id, "amount": 1000})
    assert created.status_code == 201
    payment: dict[str, Any] = created.json()
    return payment


@asynccontextmanager
async def reader_on(standby: Standby, database_url: str) -> AsyncIterator[Reader]:
    """A Reader over pools of the primary and of the standby (as the service makes them,
    service/lifespan.py), once its probe found the standby current."""
    pools = DatabaseSettings(pool_min_size=1, pool_max_size=2)
    primary = await create_pool(database_url, pools)
    try:
        replica = await create_pool(standby.url_like(database_url), pools)
        try:
            reader = Reader(primary, load_queries(), replica=replica)
            probe = ReplicaProbe(reader, max_lag_seconds=30, timeout=5)

            async def current() -> bool:
                await probe.check()  # a round finds it current once it replayed an earlier one's
                return reader.status.state == "ok"

            await wait_until(current, 30, "the standby found current")
            yield reader
        finally:
            await replica.close()
    finally:
        await primary.close()


@pytest.mark.slow  # a streaming standby: a second PostgreSQL server
async def test_reads_are_served_by_the_standby(database_url: str, standby: Standby) -> None:
    async with reader_on(standby, database_url) as reader:
        assert reader.source == "replica"

        # The connection that served each kind of read is the standby's.
        assert await reader.one(lambda session: checks.in_recovery(session.connection)) is True

        async def in_recovery_rows(session: ReadSession) -> list[asyncpg.Record]:
            return [row async for row in checks.in_recovery_rows(session.connection)]

        rows = await reader.many(in_recovery_rows)
        assert [row["in_recovery"] for row in rows] == [True]

        # A row the standby lacks is asked of the primary, which is not in recovery.
        unless_standby = checks.in_recovery_unless_standby
        assert await reader.one(lambda session: unless_standby(session.connection)) is False


@pytest.mark.slow  # a streaming standby: a second PostgreSQL server
async def test_a_value_no_server_can_take_is_an_error_of_its_own_not_of_the_standby(
    database_url: str, standby: Standby
) -> None:
    # One caller's bad value must not make every reader skip the standby until the next
    # probe (over and over, if it keeps sending it), nor be sent again to the primary.
    async with reader_on(standby, database_url) as reader:
        before = reads("primary"), fallbacks("failed")
        # asyncpg cannot encode it (an id past bigint) ...
        with pytest.raises(asyncpg.DataError):
            await reader.one(lambda session: session.payment_by_id(2**63))
        # ... and PostgreSQL cannot store it (text holds no NUL).
        with pytest.raises(asyncpg.DataError):
            await reader.many(
                lambda session: session.list_payments(
                    status="\x00",
                    created_gte=None,
                    created_lt=None,
                    metadata=None,
                    after_xid=None,
                    after_id=None,
                    max_rows=1,
                )
            )

        assert (reader.status.state, reader.source) == ("ok", "replica")
        assert (reads("primary"), fallbacks("failed")) == before


@pytest.mark.slow  # a streaming standby: a second PostgreSQL server
async def test_reads_through_the_api_come_from_the_standby(
    on_replica: RunningService, standby: Standby
) -> None:
    client = on_replica.client
    payments = [await pay(client, n) for n in range(1, 6)]
    await standby.caught_up()
    before = reads("replica"), reads("primary")
    for payment in payments:
        read = (await client.get(f"/api/v1/payments/{payment['id']}")).json()
        assert read == {**payment, "refunds": [], "attempts": read["attempts"]}
        assert [attempt["transaction_id"] for attempt in read["attempts"]] == [
            payment["transaction_id"]
        ]
        assert (
            await client.get(f"/api/v1/payments/order/{payment['order_id']}")
        ).status_code == 200
    assert len((await client.get("/api/v1/payments")).json()["data"]) == 5
    assert (reads("replica") - before[0], reads("primary") - before[1]) == (11, 0)


@pytest.mark.slow  # a streaming standby: a second PostgreSQL server
async def test_a_new_payment_is_read_back_at_once_by_id_and_by_order(
    on_replica: RunningService,
) -> None:
    client = on_replica.client

    async def pay_and_read_back(order_id: int) -> list[tuple[int, str]]:
        payment = await pay(client, order_id)
        seen = []
        for path in (f"/api/v1/payments/{payment['id']}", f"/api/v1/payments/order/{order_id}"):
            answer = await client.get(path)
            seen.append((answer.status_code, answer.json()["status"]))
        return seen

    results = await asyncio.gather(*(pay_and_read_back(n) for n in range(1, 101)))
    assert {pair for seen in results for pair in seen} == {(200, "COMPLETED")}


def fallbacks(reason: str) -> float:
    return REGISTRY.get_sample_value("payments_replica_fallbacks_total", {"reason": reason}) or 0.0


@pytest.mark.slow  # a streaming standby: a second PostgreSQL server
async def test_a_payment_the_standby_has_not_replayed_is_read_from_the_primary(
    standby: Standby, database_url: str, order_stub: OrderServiceStub
) -> None:
    # A lag bound far above the test's length: the standby stays the read source.
    async with (
        serve_on(standby, database_url, order_stub, max_lag=600) as service,
        standby_connection(standby, database_url) as replica,
    ):
        await checks.pause_replay(replica)
        payment = await pay(service.client, 1)
        before = fallbacks("not-there-yet"), reads("primary")
        for path in (f"/api/v1/payments/{payment['id']}", "/api/v1/payments/order/1"):
            answer = await service.client.get(path)
            assert (answer.status_code, answer.json()["id"]) == (200, payment["id"])
        assert (fallbacks("not-there-yet"), reads("primary")) == (before[0] + 2, before[1] + 2)
        assert (await readiness(service.client))["reads"] == "replica"
        await checks.resume_replay(replica)


@pytest.mark.slow  # a streaming standby: a second PostgreSQL server
async def test_a_page_after_a_payment_the_standby_does_not_list_yet_comes_from_the_primary(
    standby: Standby, database_url: str, order_stub: OrderServiceStub
) -> None:
    """The standby would page on below the cursor without the payments it has not
    replayed: a walk would pass them for good."""
    async with (
        serve_on(standby, database_url, order_stub, max_lag=600) as service,
        standby_connection(standby, database_url) as replica,
    ):
        client = service.client
        older = [await pay(client, n) for n in (1, 2)]
        await standby.caught_up()
        await checks.pause_replay(replica)
        newer = [await pay(client, n) for n in (3, 4, 5)]
        below_the_newest = [p["id"] for p in (newer[1], newer[0], older[1], older[0])]
        before = fallbacks("not-there-yet")

        async def whole() -> bool:
            params = {"starting_after": newer[-1]["id"]}
            page = (await client.get("/api/v1/payments", params=params)).json()
            return [payment["id"] for payment in page["data"]] == below_the_newest

        await wait_until(whole, what="the page after the newest payment, with every payment")
        assert fallbacks("not-there-yet") > before
        assert (await readiness(client))["reads"] == "replica"
        await checks.resume_replay(replica)


@pytest.mark.slow  # a streaming standby: a second PostgreSQL server
async def test_a_lagging_standby_is_skipped_and_readiness_says_so(
    standby: Standby, database_url: str, order_stub: OrderServiceStub
) -> None:
    async with (
        serve_on(standby, database_url, order_stub, max_lag=2.0) as service,
        standby_connection(standby, database_url) as replica,
    ):
        client = service.client
        assert (await readiness(client))["replica"] == "ok"
        await checks.pause_replay(replica)
        written = await pay(client, 1)  # the standby receives it but does not replay it

        await wait_for_reads_from(client, "primary")
        ready = await readiness(client)
        assert (ready["status"], ready["replica"]) == ("ready", "lagging")
        assert ready["replica_lag_seconds"] > 2.0
        before = reads("primary")
        listed = (await client.get("/api/v1/payments")).json()["data"]
        assert [payment["id"] for payment in listed] == [written["id"]]
        assert reads("primary") == before + 1

        await checks.resume_replay(replica)
        await wait_for_reads_from(client, "replica")
        assert (await readiness(client))["replica"] == "ok"


@pytest.mark.slow
async def test_the_standby_stopped_under_load_fails_no_read(
    on_replica: RunningService, standby: Standby
) -> None:
    client = on_replica.client
    payments = [await pay(client, n) for n in range(1, 21)]
    await standby.caught_up()
    answers: list[int] = []
    stopped = asyncio.Event()

    async def read_until_stopped_and_after() -> None:
        after = 0
        while after < 5:
            for payment in payments:
                answer = await client.get(f"/api/v1/payments/order/{payment['order_id']}")
                answers.append(answer.status_code)
            after += stopped.is_set()

    replica_before = reads("replica")

    async def under_load() -> bool:
        return reads("replica") > replica_before + 200

    readers = [asyncio.create_task(read_until_stopped_and_after()) for _ in range(8)]
    await wait_until(under_load, 30, "reads served by the standby")
    await asyncio.to_thread(standby.stop, "immediate")
    primary_at_stop = reads("primary")
    stopped.set()
    await asyncio.gather(*readers)

    assert set(answers) == {200}
    assert reads("primary") >= primary_at_stop + 8 * 5 * len(payments) - 8 * len(payments)
    ready = await readiness(client)
    assert (ready["status"], ready["reads"], ready["replica"]) == (
        "ready",
        "primary",
        "unreachable",
    )


@pytest.mark.slow  # a streaming standby: a second PostgreSQL server
async def test_a_standby_down_at_start_leaves_reads_on_the_primary(
    database_url: str, order_stub: OrderServiceStub, tmp_path: Any
) -> None:
    nowhere = f"postgresql://postgres:@/postgres?host={tmp_path}"  # no server listens there
    settings = make_settings(database_url, order_stub.url, database={"read_url": nowhere})
    async with serve(settings) as service:
        payment = await pay(service.client, 1)
        assert (await service.client.get(f"/api/v1/payments/{payment['id']}")).status_code == 200

        async def probed() -> bool:
            return (await readiness(service.client))["replica"] == "unreachable"

        await wait_until(probed, 15, "the replica found unreachable")
        ready = await readiness(service.client)
        assert (ready["status"], ready["reads"]) == ("ready", "primary")


async def test_readiness_without_a_replica_says_reads_go_to_the_primary(
    service: RunningService,
) -> None:
    ready = await readiness(service.client)
    assert (ready["reads"], ready["replica"], ready["replica_lag_seconds"]) == (
        "primary",
        "off",
        None,
    )


def test_a_lag_bound_under_the_probe_interval_is_refused(tmp_path: Any) -> None:
    config = tmp_path / "payments.toml"
    config.write_text("[database]\nread_max_lag_seconds = 1.0\nread_probe_interval_seconds = 1.0\n")
    with pytest.raises(ConfigError, match="read_max_lag_seconds"):
        load_settings(config, env={})
