"""What the relay holds: a claimed event, and the outcome of one attempt to send it."""

from __future__ import annotations

import enum
from typing import Literal
from uuid import UUID

import asyncpg
import msgspec


class WebhookBody(msgspec.Struct, frozen=True):
    """The contract's order webhook body, in Python: the relay re-encodes every body
    through it (compact, anything else dropped) and the OpenAPI document shows it. The SQL
    that queues it builds it with `order_webhook_body()` (migrations/0007)."""

    payment_status: Literal["completed", "failed", "refunded"]
    transaction_id: UUID


class ClaimedEvent(msgspec.Struct, frozen=True):
    id: UUID
    seq: int
    order_id: int
    body: bytes
    attempts: int
    request_id: str | None
    # time.monotonic() after which this relay's lease can no longer be trusted.
    lease_deadline: float

    @classmethod
    def from_row(cls, row: asyncpg.Record, lease_deadline: float) -> ClaimedEvent:
        # jsonb renders with spaces; the contract's body is compact, so re-encode.
        body = msgspec.json.encode(msgspec.json.decode(row["body"], type=WebhookBody))
        return cls(
            id=row["id"],
            seq=row["seq"],
            order_id=row["order_id"],
            body=body,
            attempts=row["attempts"],
            request_id=row["request_id"],
            lease_deadline=lease_deadline,
        )


class Result(enum.Enum):
    DELIVERED = "delivered"
    FAILED = "failed"
    # Not sent: handed back unattempted (shutdown, a lease about to expire, or the
    # Order Service down and this event not the probe).
    RELEASED = "released"
    # Failed while the Order Service as a whole was failing: no attempt counted. A
    # failed probe waits for its delay_seconds; the others stay due.
    DEFERRED = "deferred"


class Outcome(msgspec.Struct, frozen=True):
    event_id: UUID
    result: Result
    error: str = ""
    delay_seconds: float = 0.0
    dead: bool = False
