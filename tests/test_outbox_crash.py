"""A standalone relay (`python -m service.outbox`) killed or stopped by signal."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.order_stub import Answer, OrderServiceStub
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import service_env
from tests.support.relay_helpers import (
    all_events,
    create_payments,
    outbox_status,
    wait_all_delivered,
    wait_until,
)
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()

EVENTS = 300
# A short lease, so a killed relay's claims free up within the test.
RELAY_CONFIG = """
[database]
migrate_on_start = false
pool_min_size = 1
pool_max_size = 2

[outbox]
concurrency = 8
batch_size = 50
poll_interval_seconds = 0.2
lease_seconds = 2.0
request_timeout_seconds = 1.0
retry_schedule_seconds = [0.05, 0.1, 0.1, 0.1, 0.1, 0.1]
"""


async def start_relay_process(
    tmp_path: Path, database_url: str, order_service_url: str
) -> asyncio.subprocess.Process:
    config = tmp_path / "relay.toml"
    config.write_text(RELAY_CONFIG, encoding="utf-8")
    env = service_env(config, database_url, order_service_url)
    log = (tmp_path / "relay.log").open("ab")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.outbox", env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log
    )


@pytest.mark.slow
async def test_relay_killed_mid_batch_is_made_good_after_restart(
    tmp_path: Path, database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    await create_payments(database_url, list(range(1, EVENTS + 1)))
    order_stub.answer = lambda _: Answer(delay=0.3)
    process = await start_relay_process(tmp_path, database_url, order_stub.url)
    try:

        async def sending() -> bool:
            return len(order_stub.received) >= 20

        await wait_until(sending, 20, "the relay process sending")
    finally:
        process.kill()  # SIGKILL: no chance to release anything
        await process.wait()

    held_at_kill = (await outbox_status(db)).in_flight
    delivered_at_kill = {e["id"] for e in await all_events(db) if e["delivered_at"] is not None}
    received_before = len(order_stub.received)
    assert held_at_kill > 0  # killed with claims outstanding
    order_stub.answer = lambda _: Answer()

    # The restarted relay takes over once the dead one's leases expire.
    process = await start_relay_process(tmp_path, database_url, order_stub.url)
    try:
        await wait_all_delivered(db, 30)
    finally:
        process.terminate()
        await process.wait()

    events = await all_events(db)
    ids_by_order: dict[int, set[str]] = defaultdict(set)
    for call in order_stub.received:
        ids_by_order[call.order_id].add(call.webhook_id)
    accepted = {call.webhook_id for call in order_stub.accepted}
    # Every event delivered, each order's calls all carrying its event's id.
    assert accepted == {str(e["id"]) for e in events}
    assert all(ids_by_order[e["order_id"]] == {str(e["id"])} for e in events)
    # Sent before the kill but never recorded: sent again, with the same webhook-id.
    cut_off = {
        call.webhook_id
        for call in order_stub.received[:received_before]
        if call.webhook_id not in {str(i) for i in delivered_at_kill}
    }
    resent = [c for c in order_stub.received[received_before:] if c.webhook_id in cut_off]
    assert {c.webhook_id for c in resent} == cut_off
    duplicates = len(order_stub.received) - EVENTS
    print(
        f"\n{EVENTS} events; killed holding {held_at_kill} claims after {received_before} calls; "
        f"{len(order_stub.received)} deliveries in all, {duplicates} duplicates "
        f"({len(cut_off)} cut off by the kill)"
    )


@pytest.mark.slow
async def test_sigterm_stops_the_relay_process_and_releases_its_claims(
    tmp_path: Path, database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    await create_payments(database_url, list(range(1, 101)))
    order_stub.answer = lambda _: Answer(delay=0.2)
    process = await start_relay_process(tmp_path, database_url, order_stub.url)
    try:
        await wait_until(lambda: _received(order_stub, 10), 20, "the relay process sending")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
    assert [row async for row in checks.claimed_outbox_events(db)] == []
    assert "claims released" in (tmp_path / "relay.log").read_text()


async def _received(stub: OrderServiceStub, count: int) -> bool:
    return len(stub.received) >= count
