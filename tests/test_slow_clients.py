"""Slow clients against `payments serve` (granian, in a child process, as in production).

Thousands of connections that send half a request and wait, unfinished headers and
bodies shorter than their Content-Length, plus some that send nothing at all, must not
lock out a well-behaved client; the half-sent ones are dropped (unfinished headers) or
answered 408 (short bodies) once their timeout has passed.

Connections that never send a byte are not timed out by granian (its header timer starts
with the first byte): only [server] max_connections, sized far above what this test
holds, keeps them from locking anyone out. The README says what to put in front.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.order_stub import OrderServiceStub
from tests.support.processes import ServiceProcess, service_env
from tests.support.service import free_port, serve
from tests.support.settings import make_settings

STALLED_HEADERS = 2000
STALLED_BODIES = 2000
IDLE = 1000
# Each stalled connection is a socket here and one in the service.
OPEN_FILES_NEEDED = STALLED_HEADERS + STALLED_BODIES + IDLE + 512
# Longer than the defaults, so that every stalled connection is surely still held
# while the fresh client is served, even on a busy machine.
TIMEOUT_SECONDS = 10.0
CONFIG = f"""
[server]
header_read_timeout_seconds = {TIMEOUT_SECONDS}
body_read_timeout_seconds = {TIMEOUT_SECONDS}
"""
ANSWER_WITHIN_SECONDS = 1.0
FRESH_CLIENTS = 3
OPEN_AT_ONCE = 250
# How early a stalled connection may be dropped, as a share of its timeout (granian's timer
# was seen closing at 9.3 s of 10), and how late after it (a shared 2-core machine).
EARLY = 0.8
LATE_SECONDS = 10.0

CREATE = "POST /api/v1/payments/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
UNFINISHED_HEADERS = CREATE.encode()
SHORT_BODY = (CREATE + 'Content-Length: 100\r\n\r\n{"order_id": 1, ').encode()


@dataclass
class Stalled:
    kind: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    opened_at: float


@pytest.fixture
def service_process(
    tmp_path: Path, database_url: str, order_stub: OrderServiceStub
) -> Iterator[ServiceProcess]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < OPEN_FILES_NEEDED:
        pytest.skip(f"needs {OPEN_FILES_NEEDED} open files, the hard limit is {hard}")
    # The service inherits the raised limit too.
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, OPEN_FILES_NEEDED), hard))
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
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def stall(port: int, kind: str, request: bytes) -> Stalled:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    return Stalled(kind, reader, writer, time.monotonic())


async def open_stalled(port: int) -> list[Stalled]:
    plan = (
        [("headers", UNFINISHED_HEADERS)] * STALLED_HEADERS
        + [("body", SHORT_BODY)] * STALLED_BODIES
        + [("idle", b"")] * IDLE
    )
    stalled: list[Stalled] = []
    for start in range(0, len(plan), OPEN_AT_ONCE):
        chunk = plan[start : start + OPEN_AT_ONCE]
        stalled += await asyncio.gather(*(stall(port, kind, data) for kind, data in chunk))
    return stalled


async def fresh_create(url: str, order_id: int) -> float:
    """Seconds a new client on a new connection waits for its payment (201)."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=15.0) as client:
        response = await client.post(
            "/api/v1/payments/", json={"order_id": order_id, "amount": 1500}
        )
    assert response.status_code == 201, response.text
    return time.monotonic() - started


async def ending(connection: Stalled, deadline: float) -> tuple[bytes, float]:
    """What the service sent before closing, and how long after opening it closed."""
    received = b""
    try:
        async with asyncio.timeout_at(deadline):
            while chunk := await connection.reader.read(4096):
                received += chunk
    except ConnectionError:
        pass  # a reset is a close too
    except TimeoutError:
        return received, float("inf")
    return received, time.monotonic() - connection.opened_at


@pytest.mark.parametrize(
    ("path", "extra_header"),
    [
        ("/api/v1/payments/", ""),
        ("/api/v1/payments/batch", ""),
        # The idempotency middleware reads the body itself, under the same deadline.
        ("/api/v1/payments/", "Idempotency-Key: slow-1\r\n"),
    ],
)
async def test_a_body_that_does_not_arrive_in_time_gets_408_and_a_close(
    database_url: str, order_stub: OrderServiceStub, path: str, extra_header: str
) -> None:
    settings = make_settings(
        database_url, order_stub.url, server={"body_read_timeout_seconds": 0.5}
    )
    async with serve(settings) as running:
        port = int(running.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f'{extra_header}Content-Length: 100\r\n\r\n{{"payments": ['
        )
        writer.write(request.encode())
        started = time.monotonic()
        try:
            # Read to the end: the service must close the connection, not read on.
            received = await asyncio.wait_for(reader.read(-1), 10)
        finally:
            writer.close()
    elapsed = time.monotonic() - started
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), received[:300]
    assert b"connection: close" in head.lower()
    assert b"application/problem+json" in head
    assert b'"type":"https://payments.example/problems/request-timeout"' in body
    assert 0.4 <= elapsed < 5


@pytest.mark.slow
async def test_stalled_clients_lock_nobody_out_and_time_out(
    service_process: ServiceProcess,
) -> None:
    service_process.start()
    await service_process.wait_ready(60)

    stalled = await open_stalled(service_process.port)
    all_open = time.monotonic()
    waits = [await fresh_create(service_process.url, 1000 + i) for i in range(FRESH_CLIENTS)]
    served = time.monotonic()
    print(
        f"\n{len(stalled)} stalled connections opened in "
        f"{all_open - stalled[0].opened_at:.1f} s; fresh creates answered in "
        + ", ".join(f"{wait * 1000:.0f} ms" for wait in waits)
    )
    assert max(waits) < ANSWER_WITHIN_SECONDS
    # Every stalled connection was still within its timeout while the fresh ones were served.
    assert served < stalled[0].opened_at + TIMEOUT_SECONDS

    try:
        half_sent = [c for c in stalled if c.kind != "idle"]
        deadline = asyncio.get_running_loop().time() + TIMEOUT_SECONDS + LATE_SECONDS + 30
        endings = await asyncio.gather(*(ending(c, deadline) for c in half_sent))
    finally:
        for connection in stalled:
            connection.writer.close()

    for connection, (received, closed_after) in zip(half_sent, endings, strict=True):
        assert TIMEOUT_SECONDS * EARLY <= closed_after <= TIMEOUT_SECONDS + LATE_SECONDS, (
            connection.kind,
            closed_after,
        )
        if connection.kind == "headers":
            assert received == b""  # nothing to answer: the request never began
        else:
            assert received.startswith(b"HTTP/1.1 408 "), received[:200]
            assert b"application/problem+json" in received
    for kind in ("headers", "body"):
        times = [after for c, (_, after) in zip(half_sent, endings, strict=True) if c.kind == kind]
        print(f"{kind}: closed {min(times):.1f} to {max(times):.1f} s after opening")
