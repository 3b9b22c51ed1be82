"""The stored side of Idempotency-Key: replaying a first answer, and settling a key once
its request has been answered (see service.api.idempotency)."""

from __future__ import annotations

from typing import Any

from litestar.exceptions import HTTPException
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Send

from service.db.database import Database


class IdempotencyKeyInUse(HTTPException):
    status_code = 409


class IdempotencyKeyReused(HTTPException):
    status_code = 422


async def settle_key(db: Database, endpoint: str, key: str, response: dict[str, Any]) -> None:
    """Store the answer to replay, or forget the key after a 5xx so a retry runs again."""
    status = response.get("status", 500)
    if status < 500:
        content_type = response.get("content_type") or b"application/json"
        await db.queries.complete_idempotency_key(
            db.pool,
            endpoint=endpoint,
            key=key,
            response_status=status,
            response_content_type=content_type.decode("latin-1"),
            response_body=bytes(response["body"]),
        )
    else:
        await db.queries.release_idempotency_key(db.pool, endpoint=endpoint, key=key)


async def answer_from_store(
    db: Database, endpoint: str, key: str, digest: bytes, send: Send
) -> None:
    stored = await db.queries.find_idempotency_key(db.pool, endpoint=endpoint, key=key)
    if stored is None:  # expired and purged between the two statements: rare, retryable
        raise IdempotencyKeyInUse(detail="the idempotency key changed state; retry")
    if bytes(stored["request_hash"]) != digest:
        raise IdempotencyKeyReused(
            detail="this Idempotency-Key was used with a different request body"
        )
    if stored["response_status"] is None:
        raise IdempotencyKeyInUse(detail="a request with this Idempotency-Key is still running")
    body = bytes(stored["response_body"])
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": stored["response_status"],
        "headers": [
            (b"content-type", stored["response_content_type"].encode("latin-1")),
            (b"content-length", str(len(body)).encode()),
            (b"idempotent-replayed", b"true"),
        ],
    }
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(start)
    await send(end)
