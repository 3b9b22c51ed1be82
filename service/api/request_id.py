"""X-Request-ID: taken from the caller (bounded) or made up, echoed, and put in the log context."""

from __future__ import annotations

import uuid

from litestar.enums import ScopeType
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
