"""The console's pages: what each one answers is in the README ("Console"). Each reads
through the read side, as the API's GET endpoints do, and shows a payment's and a
refund's fields as they come (a field the resource gains shows up with no change here).
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from service.api.console.charts import delivery_lag_chart, payments_chart
from service.api.console.rendering import page
from service.api.dependencies import ReadSide
from service.api.path_ids import parse_metadata_filter, parse_timestamp
from service.domain.model import RefundStatus
from service.domain.rules import MAX_ORDER_ID, PaymentStatus
from service.queries.console import overview, replay_job, replay_jobs, stuck_events
from service.queries.events import EventFilter, EventPage, list_events
from service.queries.payments import (
    PaymentFilter,
    PaymentView,
    list_payments,
    payment_by_id,
    payment_by_order,
)

PAGE_SIZE = 50
# An order's events on its payment's page: far more than an order ever has (a charge
# attempt each, a refund), so all of them in practice.
MAX_EVENTS = 100
# The filters of the payments list a page keeps in its links to the next page.
LIST_FILTERS = ("status", "created_gte", "created_lt", "meta_key", "meta_value")


def new_idempotency_key() -> str:
    """The key a form carries from when its page was rendered: sending the form twice
    (a double click, the browser's resend) replays the first answer instead of acting
    again."""
    return f"console-{uuid.uuid4()}"


def _text(request: Request[Any, Any, Any], name: str) -> str | None:
    value = request.query_params.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _id(raw: str, name: str) -> int:
    """An order's or a payment's id from a form: a bigint from 1, or a 400 naming it."""
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ORDER_ID:
        raise ValidationException(f"{name} must be a whole number from 1, not {raw[:40]!r}")
    return int(raw)


def fields_of(struct: msgspec.Struct, *leave_out: str) -> dict[str, Any]:
    """A resource's fields by name, as a page lists them, all but `leave_out`."""
    return {
        name: value
        for name, value in msgspec.structs.asdict(struct).items()
        if name not in leave_out
    }


def payment_fields(view: PaymentView) -> dict[str, Any]:
    """The payment's own fields, as its page lists them. Of what its buyer must do next,
    only the kind: the client secret lets whoever holds it confirm the charge, and belongs
    to that buyer's page alone."""
    fields = fields_of(view, "refunds", "attempts", "metadata")
    if view.next_action is not None:
        fields["next_action"] = f"{view.next_action.type} (the buyer's page holds the secret)"
    return fields


class ConsolePages(Controller):
    path = "/console"
    include_in_schema = False

    @get("/")
    async def overview(
        self, request: Request[Any, Any, Any], read: NamedDependency[ReadSide]
    ) -> Template:
        """The last hour and day of payments, what waits, the webhooks and their relay."""
        figures = await overview(read.reader)
        outbox = await read.backlog.read()
        statuses = [str(status) for status in PaymentStatus]
        statuses += sorted({t.status for t in figures.totals} - set(statuses))
        by_status = {totals.status: totals for totals in figures.totals}
        return page(
            request,
            "overview.html",
            figures=figures,
            outbox=outbox,
            statuses=statuses,
            by_status=by_status,
            payments_chart=payments_chart(figures.per_minute, statuses),
            lag_chart=delivery_lag_chart(figures.deliveries_per_minute),
            relay="off" if read.relay is None else read.relay.state,
            order_service_url=read.settings.order_service.url,
            relay_processes=read.settings.server.relay_processes,
        )

    @get("/payments")
    async def payments(
        self, request: Request[Any, Any, Any], read: NamedDependency[ReadSide]
    ) -> Response[Any]:
        """The payments, newest first, with the API's filters, a keyset page at a time; an
        order id goes straight to that order's payment."""
        order = _text(request, "order_id")
        if order is not None:
            found = await payment_by_order(read.reader, _id(order, "order id"))
            if found is None:
                raise NotFoundException(f"order {order} has no payment")
            return Redirect(f"/console/payments/{found.id}", status_code=303)
        status = _text(request, "status")
        if status is not None and status not in PaymentStatus.__members__:
            raise ValidationException(f"status must be one of {', '.join(PaymentStatus)}")
        meta_key, meta_value = _text(request, "meta_key"), request.query_params.get("meta_value")
        metadata = None
        if meta_key is not None:
            metadata = parse_metadata_filter([(f"metadata[{meta_key}]", meta_value or "")])
        after = _text(request, "starting_after")
        wanted = PaymentFilter(
            status=None if status is None else PaymentStatus(status),
            created_gte=parse_timestamp(_text(request, "created_gte"), "created from"),
            created_lt=parse_timestamp(_text(request, "created_lt"), "created before"),
            metadata=metadata,
            starting_after=None if after is None else _id(after, "starting_after"),
            limit=PAGE_SIZE,
        )
        found_page = await list_payments(read.reader, wanted)
        kept = {name: request.query_params.get(name) or "" for name in LIST_FILTERS}
        return page(
            request,
            "payments.html",
            payments=found_page.data,
            has_more=found_page.has_more,
            filters=kept,
            statuses=list(PaymentStatus),
            next_query={k: v for k, v in kept.items() if v},
        )

    @get("/payments/{payment_id:int}")
    async def payment(
        self,
        request: Request[Any, Any, Any],
        read: NamedDependency[ReadSide],
        payment_id: FromPath[int],
    ) -> Template:
        """One payment: its fields, metadata, charge attempts, refunds, and every event of
        its order with its delivery, newest first."""
        view = await self._payment(read, payment_id)
        events = await list_events(
            read.reader, EventFilter(order_id=view.order_id, limit=MAX_EVENTS), EventPage
        )
        return page(
            request,
            "payment.html",
            payment=view,
            fields=payment_fields(view),
            # A second refund waits for the gateway's word on this one.
            refund_in_progress=next(
                (refund for refund in view.refunds if refund.status is RefundStatus.PENDING),
                None,
            ),
            refunds=[fields_of(refund) for refund in view.refunds],
            attempts=[fields_of(attempt) for attempt in view.attempts],
            events=list(reversed(events.data)),
            more_events=events.has_more,
            key=new_idempotency_key(),
        )

    @get("/payments/{payment_id:int}/refund")
    async def refund(
        self,
        request: Request[Any, Any, Any],
        read: NamedDependency[ReadSide],
        payment_id: FromPath[int],
    ) -> Template:
        """A refund's two steps: its reason, then the confirmation of what will be refunded."""
        view = await self._payment(read, payment_id)
        reason = request.query_params.get("reason")
        return page(
            request,
            "refund.html",
            payment=view,
            reason=reason.strip() if reason else "",
            key=new_idempotency_key(),
        )

    @get("/events")
    async def events(
        self, request: Request[Any, Any, Any], read: NamedDependency[ReadSide]
    ) -> Template:
        """The events that need an operator (dead, blocked), and the replay jobs."""
        return page(
            request,
            "events.html",
            outbox=await read.backlog.read(),
            stuck=await stuck_events(read.reader),
            jobs=await replay_jobs(read.reader),
            key=new_idempotency_key(),
        )

    @get("/jobs/{job_id:int}")
    async def job(
        self,
        request: Request[Any, Any, Any],
        read: NamedDependency[ReadSide],
        job_id: FromPath[int],
    ) -> Template:
        """How far a replay job got, read live: the page reloads itself until it is done."""
        found = await replay_job(read.reader, job_id)
        if found is None:
            raise NotFoundException(f"no job {job_id}")
        return page(request, "job.html", job=found)

    async def _payment(self, read: ReadSide, payment_id: int) -> PaymentView:
        view = await payment_by_id(read.reader, payment_id)
        if view is None:
            raise NotFoundException(f"payment {payment_id} does not exist")
        return view
