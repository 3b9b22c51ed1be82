"""The stored side of Idempotency-Key: the claim a request holds on its key, replaying a
first answer, and settling a key once its request has been answered (see
service.api.idempotency)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, NamedTuple
from uuid import UUID

from litestar.exceptions import HTTPException
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Send

from service.db.database import Database
from service.db.session import ClaimedKey

log = logging.getLogger(__name__)


class IdempotencyKeyInUse(HTTPException):
    status_code = 409


class IdempotencyKeyReused(HTTPException):
    status_code = 422


class StoredKey(NamedTuple):
    """Which stored key: the caller's own (its token's fingerprint, service.api.auth)."""

    caller: str
    endpoint: str
    key: str


class KeyClaim:
    """A request's hold on its key (`token`, random per claim), and the payments the
    key's attempts created: the commands' `Attempt` (service.commands.attempts)."""

    def __init__(
        self, db: Database, stored: StoredKey, token: UUID, earlier: Sequence[int]
    ) -> None:
        self.db = db
        self.earlier_payment_ids = frozenset(earlier)
        # Which key and claim: what the statements that create payments record them on,
        # and what completing or releasing the key names.
        self.claimed_key = ClaimedKey(*stored, token)

    async def settle(self, response: dict[str, Any]) -> None:
        """Store the answer to replay; after a 5xx let the key go for a retry (forgotten
        if it created no payment). Nothing if the key was taken over meanwhile."""
        status = response.get("status", 500)
        queries = self.db.queries
        if status >= 500:
            async with self.db.pool.connection() as connection:
                await queries.release_idempotency_key(connection, **self.claimed_key._asdict())
            return
        content_type = response.get("content_type") or b"application/json"
        async with self.db.pool.connection() as connection:
            stored = await queries.complete_idempotency_key(
                connection,
                **self.claimed_key._asdict(),
                response_status=status,
                response_content_type=content_type.decode("latin-1"),
                response_body=bytes(response["body"]),
            )
        if stored != "UPDATE 1":
            # Our lock expired and another attempt took the key: its answer stands.
            log.warning(
                "idempotency key %r was taken over; this answer is not stored",
                self.claimed_key.key,
            )


# The claim of the request being served, for its handler to pass to the command.
claim_var: ContextVar[KeyClaim | None] = ContextVar("idempotency_claim", default=None)


def current_claim() -> KeyClaim | None:
    """The Idempotency-Key claim of the request being served; None without a key."""
    return claim_var.get()


async def answer_from_store(db: Database, key: StoredKey, digest: bytes, send: Send) -> None:
    async with db.pool.connection() as connection:
        stored = await db.queries.find_idempotency_key(connection, **key._asdict())
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
