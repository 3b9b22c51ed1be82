"""Idempotency-Key support for the POST commands (Stripe / IETF draft semantics).

The first response to a key (status and body) is stored and replayed for the
same key and body, marked `Idempotent-Replayed: true`; the same key with
another body is 422; while the first request runs it is 409. 5xx answers are
not stored, so a retry after an outage runs again; but payments the first
try created are recorded on the key by the statement that creates them, and the
retry answers with them as they stand (Stripe's rule), never with "duplicate order"
(service/commands/charging.py).
Each claim has its own token: only the request holding the key stores its answer.
A key is the caller's own (scoped by its bearer token's fingerprint, service.api.auth):
two callers sending the same key never see each other's answers.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from contextvars import ContextVar
from typing import Any, cast

from litestar.enums import ScopeType
from litestar.exceptions import ClientException, HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Message,
    Receive,
    Scope,
    Send,
)

from service.api.auth import caller_fingerprint
from service.api.nul_characters import check_text
from service.db.errors import DATABASE_ERRORS
from service.db.session import KeyClaim, StoredKey
from service.db.unit_of_work import UnitOfWork
from service.settings import IdempotencySettings, Settings

log = logging.getLogger(__name__)


class IdempotencyKeyInUse(HTTPException):
    status_code = 409


class IdempotencyKeyReused(HTTPException):
    status_code = 422


# The claim of the request being served, for its handler to pass to the command.
claim_var: ContextVar[KeyClaim | None] = ContextVar("idempotency_claim", default=None)


def current_claim() -> KeyClaim | None:
    """The Idempotency-Key claim of the request being served; None without a key."""
    return claim_var.get()


HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255
# A key is stored under its endpoint (method and path) in a btree index, whose entries
# PostgreSQL caps at about 2.7 kB; no route's path comes near this.
MAX_ENDPOINT_BYTES = 1024


def is_valid_key(key: str) -> bool:
    """Whether `key` can be an Idempotency-Key (of the API's header, of a console form)."""
    # ASCII only: other bytes have no agreed text (latin-1? UTF-8?), so a retry
    # through another client could name another key.
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()


async def claim_key(
    uow: UnitOfWork,
    settings: IdempotencySettings,
    caller: str,
    endpoint: str,
    key: str,
    request_hash: bytes,
) -> tuple[KeyClaim | None, StoredKey | None]:
    """Claim the caller's key for this request: (the claim, None); or, when another
    request holds it or has answered, (None, what it holds: its request's hash and any
    answer); (None, None) when it expired and was purged in between (rare, retryable)."""
    async with uow.connection() as session:
        claim = await session.claim_key(
            caller,
            endpoint,
            key,
            request_hash,
            token=uuid.uuid4(),
            ttl_seconds=settings.ttl_hours * 3600.0,
            lock_seconds=settings.lock_seconds,
        )
        stored = None if claim is not None else await session.find_key(caller, endpoint, key)
    return claim, stored


async def keep_answer(
    uow: UnitOfWork, claim: KeyClaim, status: int, content_type: str, body: bytes
) -> None:
    """Store the answer to replay; after a 5xx let the key go for a retry (forgotten if it
    created no payment). Nothing if the key was taken over meanwhile.

    Never raises a database error: the answer (say a 503 during an outage) stands, and a
    failure of the key's own bookkeeping only leaves the key to expire with its lock."""
    try:
        async with uow.connection() as session:
            if status >= 500:
                await session.release_key(claim)
                return
            stored = await session.store_answer(claim, status, content_type, body)
    except DATABASE_ERRORS as exc:
        log.warning("idempotency key %r not stored on %s: %r", claim.key, claim.endpoint, exc)
        return
    if not stored:
        # Our lock expired and another request took the key: its answer stands.
        log.warning("idempotency key %r was taken over; this answer is not stored", claim.key)


def _key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            # The IETF draft sends a structured-field string ("..."); Stripe a bare token.
            key = value.decode("latin-1").strip().strip('"')
            check_text(key, "header Idempotency-Key")
            if not is_valid_key(key):
                raise ClientException(
                    f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
                )
            return key
    return None


async def _read_body(receive: Receive, limit: int | None) -> bytes | None:
    """The whole request body, or None past `limit` (the app then answers 413)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes) -> Receive:
    sent = False

    async def receive() -> Any:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return cast(Receive, receive)


class IdempotencyMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        key = _key(scope)
        if key is None:
            await next_app(scope, receive, send)
            return
        app_state = scope["litestar_app"].state
        settings: Settings = app_state.settings
        # The route's own limit, as the handler would read it (the batch has a larger one).
        handler = cast(HTTPRouteHandler, scope["route_handler"])
        limit = handler.resolve_request_max_body_size()
        body = await _read_body(receive, limit)
        if body is None:
            raise HTTPException(status_code=413, detail="Request Entity Too Large")
        http_scope = cast(HTTPScope, scope)
        endpoint = f"{http_scope['method']} {http_scope['path'].rstrip('/')}"
        if len(endpoint.encode()) > MAX_ENDPOINT_BYTES:
            raise ClientException(
                f"with an Idempotency-Key the path must be at most {MAX_ENDPOINT_BYTES} bytes"
            )
        caller = caller_fingerprint(scope)
        digest = hashlib.sha256(body).digest()
        uow: UnitOfWork = app_state.write_side.uow
        claim, stored = await claim_key(uow, settings.idempotency, caller, endpoint, key, digest)
        if claim is None:
            await _replay(stored, digest, send)
            return

        response: dict[str, Any] = {"body": bytearray()}
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                response["content_type"] = dict(message.get("headers", [])).get(b"content-type")
            elif message["type"] == "http.response.body":
                response["body"] += message.get("body", b"")
            messages.append(message)

        serving = claim_var.set(claim)
        try:
            await next_app(scope, _replaying(body), capture)
        finally:
            claim_var.reset(serving)
            content_type = response.get("content_type") or b"application/json"
            await keep_answer(
                uow,
                claim,
                response.get("status", 500),
                content_type.decode("latin-1"),
                bytes(response["body"]),
            )
        # Held back until the key is stored: a client retrying the moment it has the
        # answer must find it stored (or released after a 5xx), never still locked.
        for message in messages:
            await send(message)


async def _replay(stored: StoredKey | None, digest: bytes, send: Send) -> None:
    """The stored answer of the request that holds the key, or why there is none."""
    if stored is None:  # expired and purged between the two statements: rare, retryable
        raise IdempotencyKeyInUse(detail="the idempotency key changed state; retry")
    if stored.request_hash != digest:
        raise IdempotencyKeyReused(
            detail="this Idempotency-Key was used with a different request body"
        )
    if stored.response_status is None or stored.response_body is None:
        raise IdempotencyKeyInUse(detail="a request with this Idempotency-Key is still running")
    body = stored.response_body
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": stored.response_status,
        "headers": [
            (b"content-type", (stored.response_content_type or "").encode("latin-1")),
            (b"content-length", str(len(body)).encode()),
            (b"idempotent-replayed", b"true"),
        ],
    }
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(start)
    await send(end)
