"""A real HTTP server on loopback standing in for the Order Service.

It runs aiohttp on its own thread and event loop, so it keeps answering while
a test blocks, and records every webhook it receives.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class ReceivedWebhook:
    order_id: int
    path: str
    headers: dict[str, str]
    raw_body: bytes
    received_at: float
    # The sender's address and port: one per connection it used.
    peer: tuple[str, int] = ("", 0)

    @property
    def body(self) -> Any:
        return json.loads(self.raw_body)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


@dataclass
class Answer:
    """How the stub answers one call."""

    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    # Stream a body that never ends (until the caller hangs up) instead of `body`.
    endless: bool = False


ENDLESS_CHUNK = b"x" * 65536


class OrderServiceStub:
    def __init__(self) -> None:
        self.received: list[ReceivedWebhook] = []
        self.accepted: list[ReceivedWebhook] = []
        # Bytes of endless answers written before their callers hung up.
        self.streamed_bytes = 0
        # Decides the answer to each call; replace it to simulate failures.
        self.answer: Callable[[ReceivedWebhook], Answer] = lambda _: Answer()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OrderServiceStub:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/orders/{order_id}/webhook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call = ReceivedWebhook(
            order_id=int(request.match_info["order_id"]),
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            raw_body=await request.read(),
            received_at=time.time(),
            peer=request.transport.get_extra_info("peername") if request.transport else ("", 0),
        )
        with self._lock:
            self.received.append(call)
        answer = self.answer(call)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if 200 <= answer.status < 300:
            with self._lock:
                self.accepted.append(call)
        if answer.endless:
            return await self._stream_endlessly(request, answer)
        return web.Response(status=answer.status, headers=answer.headers, text=answer.body)

    async def _stream_endlessly(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        await response.prepare(request)
        try:
            # Bounded only so that a test gone wrong ends: 1 GiB.
            for _ in range(16384):
                await response.write(ENDLESS_CHUNK)
                self.streamed_bytes += len(ENDLESS_CHUNK)
        except (ConnectionError, RuntimeError):
            pass  # the caller hung up, as it should
        return response

    def accepted_for(self, order_id: int) -> list[ReceivedWebhook]:
        with self._lock:
            return [c for c in self.accepted if c.order_id == order_id]

    async def wait_for_accepted(self, count: int, within: float = 10.0) -> list[ReceivedWebhook]:
        """Wait until at least `count` webhooks were accepted; fail the test otherwise."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.accepted) >= count:
                    return list(self.accepted)
            await asyncio.sleep(0.005)
        with self._lock:
            got = len(self.accepted)
        raise AssertionError(f"expected {count} accepted webhooks within {within}s, got {got}")
