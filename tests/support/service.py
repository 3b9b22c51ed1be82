"""The service under test, served over real HTTP on loopback in the test's event loop."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache

import httpx
import uvicorn
from litestar import Litestar

from service.app import create_app
from service.settings import Settings


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


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[RunningService]:
    """Start create_app(settings) under uvicorn on a free port; stop it afterwards."""
    app = create_app(settings)
    port = free_port()
    # log_config=None: the service's own logging stays as it is, not reconfigured per start.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # start-up failed: raise its error here
            raise RuntimeError("service stopped during start-up")
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=30, verify=tls_context()) as client:
        try:
            yield RunningService(url=url, app=app, client=client)
        finally:
            server.should_exit = True
            await task
