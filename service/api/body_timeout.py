"""A deadline on reading the request body: a client that sends its headers and then
trickles (or withholds) the body gets 408 instead of holding a connection and a task.

The server (granian) times out unfinished headers itself; once they are read, only
the app sees the body arrive, so the body's deadline lives here.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send


class BodyReadTimeout(HTTPException):
    status_code = 408


class BodyReadTimeoutMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        loop = asyncio.get_running_loop()
        # The whole body, not each chunk: a byte every few seconds must not keep it alive.
        deadline = loop.time() + self.seconds
        body_done = False

        async def receive_in_time() -> Any:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                # The rest of the body may still arrive: close rather than read on.
                raise BodyReadTimeout(
                    detail=f"the request body did not arrive within {self.seconds:g} s",
                    headers={"Connection": "close"},
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await next_app(scope, cast(Receive, receive_in_time), send)
