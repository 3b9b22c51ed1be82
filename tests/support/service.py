"""The service under test, served over real HTTP on loopback in the test's event loop."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import asyncpg
import httpx
import msgspec
import uvicorn
from litestar import Litestar

from service.app import create_app
from service.log_config import configure_logging
from service.settings import Settings
from tests.support.order_stub import OrderServiceStub
from tests.support.postgres import TestPostgres
from tests.support.settings import make_settings


@dataclass
class RunningService:
    url: str
    app: Litestar
    client: httpx.AsyncClient


@cache
def tls_context() -> ssl.SSLContext:
    """One default TLS context for every test client: loading the CA bundle took a
    fifth of a second per client, and the clients only speak plain HTTP on loopback."""
    return ssl.create_default_context()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# The sections of the settings create_app builds the app from; the lifespan and the
# middleware read the others from app.state.settings at each start and request
# (tests/test_start_up.py holds create_app to that).
APP_SECTIONS = ("server", "auth")
# Apps built by create_app and stopped, by those sections.
_idle_apps: dict[bytes, list[Litestar]] = {}


def _shape(settings: Settings) -> bytes:
    return msgspec.json.encode([getattr(settings, section) for section in APP_SECTIONS])


@asynccontextmanager
async def app_for(settings: Settings) -> AsyncIterator[Litestar]:
    """create_app(settings), or a stopped app create_app built from the same
    APP_SECTIONS, given these settings: Litestar spends 50 to 90 ms of CPU building an
    app, most of a short test. The lifespan builds everything that lives in app.state
    anew at each start."""
    shape = _shape(settings)
    idle = _idle_apps.setdefault(shape, [])
    if idle:
        app = idle.pop()
        configure_logging()  # as create_app does
        app.state.settings = settings
    else:
        app = create_app(settings)
    yield app
    idle.append(app)  # not after a failed start-up or stop: that app is not reused


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[RunningService]:
    """Start create_app(settings) under uvicorn on a free port; stop it afterwards."""
    async with app_for(settings) as app, _served(app) as running:
        yield running


@asynccontextmanager
async def _served(app: Litestar) -> AsyncIterator[RunningService]:
    # A socket bound here and handed to uvicorn: a port found free and bound later could
    # be taken in between by another test process (pytest -n). IPPROTO_TCP named, or
    # asyncio leaves Nagle's algorithm on for its connections: 40 ms per response.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    # log_config=None: the service's own logging stays as it is, not reconfigured per start.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", log_config=None, lifespan="on"
    )
    config.load()
    server = uvicorn.Server(config)
    # uvicorn's start-up and shut-down without its main loop, which looks for the
    # exit flag ten times a second: a fifth of a second per test, for nothing.
    server.lifespan = config.lifespan_class(config)
    try:
        await server.startup(sockets=[listener])
    except SystemExit as exc:  # uvicorn's answer to a failed lifespan start-up
        listener.close()
        raise RuntimeError("service stopped during start-up (see the log above)") from exc
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30, verify=tls_context()) as client:
            yield RunningService(url=url, app=app, client=client)
    finally:
        await stop(server)


async def stop(server: uvicorn.Server) -> None:
    """uvicorn's shut-down, without its fixed tenth of a second for connections to finish:
    none is left when the test's client is closed (most tests end that way), and the
    others close within milliseconds once told to."""
    for listener in server.servers:
        listener.close()
        await listener.wait_closed()
    # A connection the client just closed is gone once its end-of-file is read.
    for _ in range(3):
        await asyncio.sleep(0)
    for connection in list(server.server_state.connections):
        connection.shutdown()
    # uvicorn gives them a tenth of a second; most are gone within a few milliseconds.
    for _ in range(20):
        if not server.server_state.connections:
            break
        await asyncio.sleep(0.005)
    # A request still being handled (a connection cut mid-request) finishes before the
    # lifespan closes its pools, and before app_for hands the app to another test.
    if server.server_state.tasks:
        await asyncio.wait(set(server.server_state.tasks), timeout=5)
    await server.lifespan.shutdown()


@dataclass
class Shared:
    """One service for a module's tests, on a database of its own (see shared_service)."""

    service: RunningService
    db: asyncpg.Connection
    client: httpx.AsyncClient
    # The app itself, past the HTTP server: uvicorn refuses a NUL in a header before the
    # app sees it (so may another server), so only this way does one reach the app.
    asgi: httpx.AsyncClient


@asynccontextmanager
async def shared_service(
    postgres: TestPostgres,
    template_database: str,
    *,
    first_payment: bool = True,
    **sections: dict[str, Any],
) -> AsyncIterator[Shared]:
    """One service (settings `sections` as make_settings takes them) on a fresh database
    of its own and an Order Service stub of its own, for a module's cases that only need
    its answers. With `first_payment`, payment 1 (order 1, 1,000 JPY) is made first
    (COMPLETED with the default gateway), so that bodies naming it reach the rules."""
    name, url = postgres.create_database(template=template_database)
    stub = OrderServiceStub().start()
    try:
        async with serve(make_settings(url, stub.url, **sections)) as svc:
            db = await asyncpg.connect(url)
            try:
                if first_payment:
                    first = await svc.client.post(
                        "/api/v1/payments/", json={"order_id": 1, "amount": 1000}
                    )
                    assert first.status_code == 201 and first.json()["id"] == 1, first.text
                transport = httpx.ASGITransport(app=svc.app)
                async with httpx.AsyncClient(transport=transport, base_url=svc.url) as asgi:
                    yield Shared(service=svc, db=db, client=svc.client, asgi=asgi)
            finally:
                await db.close()
    finally:
        stub.stop()
        postgres.drop_database(name)
