"""What every request passes through before its route: its request id, and a time limit on
reading its body."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.request_context import request_id_var

HEADER = b"x-request-id"


def _given(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        # Printable ASCII only: anything else (invalid UTF-8, control bytes) would be
        # echoed raw into a response header and into every log line of the request.
        if name == HEADER and 0 < len(value) <= 128 and value.isascii():
            text = value.decode("ascii")
            if text.isprintable():
                return text
    return None


class RequestIdMiddleware(ASGIMiddleware):
    """X-Request-ID: taken from the caller (bounded) or made up, echoed, and put in the log
    context."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        request_id = _given(scope) or uuid.uuid4().hex
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((HEADER, request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await next_app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class BodyReadTimeout(HTTPException):
    status_code = 408


class BodyReadTimeoutMiddleware(ASGIMiddleware):
    """A deadline on reading the request body: a client that sends its headers and then
    trickles (or withholds) the body gets 408 instead of holding a connection and a task.

    The server (granian) times out unfinished headers itself; once they are read, only
    the app sees the body arrive, so the body's deadline lives here.
    """

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
