"""The HTTP connection pool of an import."""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

USER_AGENT = "payments-import"
REQUEST_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0


def open_http(
    base_url: str,
    token: str | None,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """A keep-alive client with a connection per call in flight (aiohttp transport: faster)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"user-agent": USER_AGENT}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(
        base_url=base_url,
        transport=transport or AiohttpTransport(limits=limits),
        timeout=httpx.Timeout(REQUEST_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
        headers=headers,
    )
