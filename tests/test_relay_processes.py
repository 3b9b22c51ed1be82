"""`payments serve` runs the outbox relays in processes of their own beside its workers:
started with it, restarted when one dies, stopped with it."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest

from service.outbox.processes import IN_PROCESS_RELAY_VARIABLE, relay_processes_for
from service.settings import load_settings
from tests.support.order_stub import OrderServiceStub
from tests.support.processes import ServiceProcess, service_env
from tests.support.service import free_port

CONFIG = """[server]
relay_processes = 1
"""


def relay_processes(service_pid: int) -> list[psutil.Process]:
    """The live relay processes of the service (a killed one not yet reaped is left out)."""
    found = []
    for child in psutil.Process(service_pid).children(recursive=True):
        try:
            if "service.outbox" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:
            continue
    return found


async def pay(url: str, order_id: int) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        created = await client.post("/api/v1/payments/", json={"order_id": order_id, "amount": 500})
    assert created.status_code == 201, created.text


@pytest.fixture
async def served(
    tmp_path: Path, database_url: str, order_stub: OrderServiceStub
) -> AsyncIterator[ServiceProcess]:
    (config := tmp_path / "payments.toml").write_text(CONFIG, encoding="utf-8")
    service = ServiceProcess(
        port=free_port(),
        env=service_env(config, database_url, order_stub.url),
        log=tmp_path / "service.log",
    )
    service.start()
    try:
        await service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.mark.slow  # starts `payments serve` as a process
async def test_webhooks_are_sent_by_a_relay_process_beside_the_workers(
    served: ServiceProcess, order_stub: OrderServiceStub
) -> None:
    [relay] = relay_processes(served.pid)
    assert relay.environ().get(IN_PROCESS_RELAY_VARIABLE) == "false"
    await pay(served.url, 1)
    [webhook] = await order_stub.wait_for_accepted(1)
    assert webhook.order_id == 1
    # The relay's connection, not the worker's, sent it.
    assert webhook.peer[1] in {c.laddr.port for c in relay.net_connections(kind="tcp")}


@pytest.mark.slow  # starts `payments serve` as a process
async def test_a_relay_process_that_dies_is_started_again(
    served: ServiceProcess, order_stub: OrderServiceStub
) -> None:
    [first] = relay_processes(served.pid)
    os.kill(first.pid, signal.SIGKILL)
    for _ in range(100):  # the restart comes within a few seconds
        await asyncio.sleep(0.1)
        again = relay_processes(served.pid)
        if again and again[0].pid != first.pid:
            break
    assert [p.pid for p in relay_processes(served.pid)] != [first.pid]
    await pay(served.url, 2)
    assert [w.order_id for w in await order_stub.wait_for_accepted(1, within=15)] == [2]


@pytest.mark.slow  # starts `payments serve` as a process
async def test_stopping_the_service_stops_its_relays(served: ServiceProcess) -> None:
    [relay] = relay_processes(served.pid)
    served.stop()
    assert not relay.is_running() or relay.status() == psutil.STATUS_ZOMBIE


def test_the_workers_are_told_to_leave_the_relay_to_those_processes(tmp_path: Path) -> None:
    env = {"PAYMENTS_CONFIG": str(tmp_path / "none.toml"), IN_PROCESS_RELAY_VARIABLE: "false"}
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    assert load_settings(env=env).outbox.relay_in_process is False
    assert load_settings(env={**env, IN_PROCESS_RELAY_VARIABLE: "1"}).outbox.relay_in_process


def test_serve_runs_a_relay_process_by_default_only_where_there_are_cores_to_spare(
    tmp_path: Path,
) -> None:
    (config := tmp_path / "payments.toml").write_text("", encoding="utf-8")
    assert load_settings(config, env={}).server.relay_processes == "auto"
    # One worker: on 2 cores the relay stays in it; from 3 cores on it gets a process.
    assert [relay_processes_for(1, cores) for cores in (1, 2, 3, 8)] == [0, 0, 1, 1]
    # As many workers as cores: each keeps its relay.
    assert relay_processes_for(4, 4) == 0 and relay_processes_for(4, 6) == 1
    # A number given is kept as it is.
    config.write_text("[server]\nrelay_processes = 2\n", encoding="utf-8")
    assert load_settings(config, env={}).server.relay_processes == 2
