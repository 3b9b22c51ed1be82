"""The events endpoints: the order webhooks as a pull API, and one sent again."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated
from uuid import UUID

from litestar import get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter, PathParameter

from service.api.auth import PaymentsAPI
from service.api.dependencies import ReadSide, WriteSide
from service.api.openapi import COMMON_PROBLEMS, READ_ONLY_PROBLEM, PaymentsOperation, problems
from service.commands import RedeliverEvent
from service.commands.outbox_operations import Redelivery, redeliver_event
from service.domain.rules import MAX_ORDER_ID
from service.outbox.events import WebhookBody
from service.queries.events import Event, EventFilter, EventPage, UnknownEvent, list_events

MAX_PAGE = 100
# Taken as text and checked here, so that anything but a UUID is the 400 it should be,
# not a routing 404; documented as what it is.
UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
AS_UUID = {"format": "uuid"}
EVENT_ID = PathParameter(description="An event id (its webhook-id).", schema_extra=AS_UUID)


class WebhookEvent(Event, frozen=True):
    """An order webhook the outbox holds, with its delivery state."""

    data: WebhookBody  # the body, as sent


class WebhookEventPage(EventPage, frozen=True):
    data: Sequence[WebhookEvent]


def parse_event_id(raw: str, name: str) -> UUID:
    if not UUID_TEXT.fullmatch(raw):
        raise ValidationException(f"{name} must be an event id (a UUID), not {raw[:40]!r}")
    return UUID(raw)


class EventController(PaymentsAPI):
    path = "/api/v1/events"
    tags = ["events"]

    @get(
        "/",
        operation_id="listEvents",
        summary="List events",
        operation_class=PaymentsOperation,
        responses=problems(
            (400, "invalid-request", "a parameter is not what it must be"),
            (404, "not-found", "starting_after names no event kept (or past retention)"),
            *COMMON_PROBLEMS,
        ),
    )
    async def by_filter(
        self,
        read: NamedDependency[ReadSide],
        order_id: Annotated[
            int | None, Parameter(ge=1, le=MAX_ORDER_ID, description="Only this order's events.")
        ] = None,
        starting_after: Annotated[
            str | None,
            Parameter(description="An event id: the page after it.", schema_extra=AS_UUID),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="Page size.")] = 20,
    ) -> WebhookEventPage:
        """Order webhooks, oldest first, with their delivery state; one order's or everyone's.

        `data` is the webhook body as sent, `id` its `webhook-id`. Keyset pages: pass the
        last id of a page as `starting_after` for the next one; `has_more` says whether
        there is one (a `starting_after` of no event kept, e.g. past retention, is a 404).
        An event is listed once every transaction older than the one that queued it has
        ended, so a page never skips an event that commits later.
        """
        cursor = (
            None if starting_after is None else parse_event_id(starting_after, "starting_after")
        )
        try:
            return await list_events(
                read.reader, EventFilter(order_id, cursor, limit), WebhookEventPage
            )
        except UnknownEvent as exc:
            # A well-formed id of nothing kept: not found, as redeliver answers it.
            raise NotFoundException(str(exc)) from None

    @post(
        "/{event_id:str}/redeliver",
        operation_id="redeliverEvent",
        summary="Redeliver an event",
        status_code=202,
        operation_class=PaymentsOperation,
        responses=problems(
            (400, "invalid-request", "the id is not a UUID"),
            (404, "not-found", "no event with that id is kept"),
            READ_ONLY_PROBLEM,
            *COMMON_PROBLEMS,
        ),
    )
    async def send_again(
        self, write: NamedDependency[WriteSide], event_id: Annotated[str, EVENT_ID]
    ) -> Redelivery:
        """Send one event again now, same webhook-id and body, whatever its state.

        Its order's order is kept: earlier undelivered events of the order go first (dead
        ones with a fresh set of delivery attempts), and the later ones already delivered go again
        after it. `sending` lists them in that order. Each call sends again.
        """
        redelivery = await redeliver_event(
            RedeliverEvent(parse_event_id(event_id, "event id")), write.uow
        )
        if redelivery is None:
            raise NotFoundException(f"event {event_id} does not exist (or is past retention)")
        return redelivery
