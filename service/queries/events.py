"""The events of GET /api/v1/events: the order webhooks of the outbox, oldest first, with
their delivery state, in keyset pages (sql/events.sql list_events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

import msgspec

from service.db.database import Database
from service.db.rows import row_as

# The webhook body's type. The relay owns it (service/outbox/events.py WebhookBody), a
# sibling the read side does not import: the API names it, and the body is read through
# the very type the relay sends it through.
Body = TypeVar("Body")


class Delivery(msgspec.Struct, frozen=True):
    # blocked: waiting behind an earlier undelivered event of its order (view outbox_blocked).
    state: Literal["pending", "delivered", "dead", "blocked"]
    # Attempts of the current set: a replay or a redelivery starts a fresh one.
    attempts: int
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    # The error of the latest failed attempt, kept after a later success.
    last_error: str | None


class Event(msgspec.Struct, Generic[Body], frozen=True):
    id: UUID  # the webhook-id header of every send of this event
    order_id: int
    payment_id: int
    type: Literal["payment.completed", "payment.failed", "payment.refunded"]
    data: Body  # the webhook body, as sent
    created_at: datetime
    delivery: Delivery


class EventPage(msgspec.Struct, Generic[Body], frozen=True):
    data: list[Event[Body]]
    has_more: bool


class EventFilter(msgspec.Struct, frozen=True):
    order_id: int | None = None
    starting_after: UUID | None = None  # an event id: the page continues after it
    limit: int = 20


class UnknownEvent(LookupError):
    """`starting_after` names no event kept (never queued, or deleted after retention)."""


async def list_events(db: Database, wanted: EventFilter, body: type[Body]) -> EventPage[Body]:
    """A page of events, oldest first; `body` is the webhook body's type."""
    cursor = wanted.starting_after
    if cursor is not None and not await db.queries.event_exists(db.pool, event_id=cursor):
        raise UnknownEvent(f"starting_after {cursor} is not the id of an event kept")
    rows = db.queries.list_events(
        db.pool,
        order_id=wanted.order_id,
        starting_after=cursor,
        # One more than asked: whether another page follows, without counting.
        max_rows=wanted.limit + 1,
    )
    events = [event_of(row, body) async for row in rows]
    return EventPage(data=events[: wanted.limit], has_more=len(events) > wanted.limit)


def event_of(row: Any, body: type[Body]) -> Event[Body]:
    # The columns of one row make both the event and its delivery; jsonb comes as text.
    data = msgspec.json.decode(row["data"], type=body)
    return row_as({**row, "data": data, "delivery": row_as(row, Delivery)}, Event)
