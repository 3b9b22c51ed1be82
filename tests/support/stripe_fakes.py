"""Stripe as its API reference documents it, for what localstripe never does: a loopback
server answering as scripted (a decline code other than card_declined, a 5xx, a 429), the
card errors Stripe declines with, and events signed as Stripe signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from aiohttp import web

# Stripe's card errors (402, `card_error`): its `code`, its `decline_code`, and the
# service's failure code each maps to (CONTRACT.md, "A real payment gateway: Stripe").
STRIPE_DECLINES = [
    ("card_declined", "insufficient_funds", "insufficient_funds"),
    ("card_declined", "lost_card", "lost_or_stolen_card"),
    ("card_declined", "stolen_card", "lost_or_stolen_card"),
    ("expired_card", None, "expired_card"),
    ("incorrect_cvc", None, "incorrect_cvc"),
    ("processing_error", None, "processing_error"),
    ("card_declined", "try_again_later", "processing_error"),
    ("card_declined", "generic_decline", "card_declined"),
    ("card_declined", "fraudulent", "card_declined"),
    ("card_declined", None, "card_declined"),
    ("card_declined", "authentication_required", "authentication_required"),
]


def card_error(code: str, decline_code: str | None, message: str) -> dict[str, Any]:
    """The body of Stripe's 402 for a declined PaymentIntent create."""
    error = {
        "type": "card_error",
        "code": code,
        "decline_code": decline_code,
        "message": message,
        "payment_intent": {"id": "pi_declined", "status": "requires_payment_method"},
    }
    return {"error": error}


class ScriptedStripe:
    """A loopback server that answers every request with `answer` (status, JSON body,
    headers), or with the next of `answers` while there are some, as Stripe documents
    its answers. It records what it received: each request's method, path and headers in
    `received`, its body in `bodies` (in the same order)."""

    def __init__(self) -> None:
        self.answer: tuple[int, dict[str, Any], dict[str, str]] = (200, {}, {})
        self.answers: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.received: list[tuple[str, str, dict[str, str]]] = []
        self.bodies: list[bytes] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        content = await request.read()
        self.received.append((request.method, request.path, dict(request.headers)))
        self.bodies.append(content)
        status, body, headers = self.answers.pop(0) if self.answers else self.answer
        return web.json_response(body, status=status, headers=headers)

    async def __aenter__(self) -> ScriptedStripe:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def signature(body: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def event_body(event_type: str, data_object: dict[str, Any]) -> bytes:
    """An event as Stripe sends it, around an object as Stripe's API gives it."""
    event = {
        "id": "evt_" + secrets.token_hex(8),
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": data_object},
    }
    return json.dumps(event).encode()
