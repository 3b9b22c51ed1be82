"""The events of GET /api/v1/events: the order webhooks of the outbox, oldest first, with
their delivery state, in keyset pages (sql/events.sql list_events)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar
from uuid import UUID

import msgspec

from service.db.reader import Reader
from service.db.rows import row_as


class Delivery(msgspec.Struct, frozen=True):
    # blocked: waiting behind an earlier undelivered event of its order (view outbox_blocked).
    state: Literal["pending", "delivered", "dead", "blocked"]
    # Attempts of the current set: a replay or a redelivery starts a fresh one.
    attempts: int
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    # The error of the latest failed attempt, kept after a later success.
    last_error: str | None


class Event(msgspec.Struct, frozen=True):
    id: UUID  # the webhook-id header of every send of this event
    order_id: int
    payment_id: int
    type: Literal["payment.completed", "payment.failed", "payment.refunded"]
    # The webhook body, as sent. Its type is the relay's (service/outbox/events.py
    # WebhookBody), a sibling the read side does not import: the API's subclass names it.
    data: Any
    created_at: datetime
    delivery: Delivery


class EventPage(msgspec.Struct, frozen=True):
    data: Sequence[Event]
    has_more: bool


# The page as the caller shapes it (a subclass naming the body's type).
Page = TypeVar("Page", bound=EventPage)


class EventFilter(msgspec.Struct, frozen=True):
    order_id: int | None = None
    starting_after: UUID | None = None  # an event id: the page continues after it
    limit: int = 20


class UnknownEvent(LookupError):
    """`starting_after` names no event kept (never queued, or deleted after retention)."""


async def list_events(reader: Reader, wanted: EventFilter, page: type[Page]) -> Page:
    """A page of events, oldest first, as `page` (EventPage or a subclass)."""
    cursor = wanted.starting_after
    if cursor is not None:
        # Not on the replica yet is not unknown: Reader.one asks the primary then.
        found = await reader.one(lambda session: session.find_event_id(cursor))
        if found is None:
            raise UnknownEvent(f"starting_after {cursor} is not the id of an event kept")
    rows = await reader.many(
        lambda session: session.list_events(
            order_id=wanted.order_id,
            starting_after=cursor,
            # One more than asked: whether another page follows, without counting.
            max_rows=wanted.limit + 1,
        )
    )
    events = [event_fields(row) for row in rows]
    return row_as({"data": events[: wanted.limit], "has_more": len(events) > wanted.limit}, page)


def event_fields(row: Any) -> dict[str, Any]:
    # The columns of one row make both the event and its delivery.
    return {**row, "delivery": row_as(row, Delivery)}
