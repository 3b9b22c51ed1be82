"""What the operator console reads beyond the API's resources (sql/console.sql): the
overview's figures and charts, the events that need an operator, the replay jobs and how
far each got. Payments and events themselves are read as the API reads them
(service/queries/payments.py, events.py)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

import msgspec

from service.db.reader import Reader, ReadSession
from service.db.rows import row_as

# How many rows a console list shows at most: what fits on a page a person reads.
MAX_LISTED = 100


class StatusTotals(msgspec.Struct, frozen=True):
    """Payments created in the last hour and day that are in `status` now."""

    status: str
    hour_count: int
    hour_amount: Decimal
    day_count: int
    day_amount: Decimal


class FlaggedPayment(msgspec.Struct, frozen=True):
    """A payment the gateway left undecided so long that someone must look."""

    payment_id: int
    order_id: int
    amount: Decimal
    processing_since: datetime
    flagged_at: datetime
    last_asked_at: datetime | None


class MinuteOfPayments(msgspec.Struct, frozen=True):
    minute: datetime
    by_status: dict[str, int]


class Deliveries(msgspec.Struct, frozen=True):
    """Webhooks delivered in the last hour, and how long they took from being queued to
    being delivered."""

    delivered: int
    p50_seconds: float | None
    p99_seconds: float | None


class MinuteOfDeliveries(Deliveries, frozen=True):
    """Webhooks delivered in one minute of the last hour, and how long they took."""

    minute: datetime


class Overview(msgspec.Struct, frozen=True):
    totals: list[StatusTotals]
    # PENDING payments, waiting for their buyer (3-D Secure), whenever created.
    waiting_for_buyers: int
    manual_review_count: int
    manual_review: list[FlaggedPayment]
    per_minute: list[MinuteOfPayments]
    deliveries_per_minute: list[MinuteOfDeliveries]
    deliveries_in_the_hour: Deliveries


class StuckEvent(msgspec.Struct, frozen=True):
    """An event that needs an operator: dead, or blocked behind `blocked_by`."""

    id: UUID
    order_id: int
    payment_id: int
    type: str
    created_at: datetime
    state: str
    attempts: int
    last_attempt_at: datetime | None
    dead_at: datetime | None
    last_error: str | None
    blocked_by: UUID | None


class ReplayJobProgress(msgspec.Struct, frozen=True):
    """A replay job and how far it got: its events delivered, dead again, pending."""

    id: int
    started_at: datetime
    started_by: str
    dead_since: datetime
    events: int
    delivered: int
    dead: int
    pending: int

    @property
    def finished(self) -> bool:
        return self.pending == 0


async def overview(reader: Reader) -> Overview:
    """Every figure of the overview, read on one connection (one server, one moment), but
    the outbox's backlog: the console reads that as readiness and the metrics do
    (service/queries/outbox_health.py, SharedBacklog)."""
    found = await reader.one(_overview)
    assert found is not None
    return found


async def _overview(session: ReadSession) -> Overview:
    per_minute: dict[datetime, dict[str, int]] = {}
    for row in await session.payments_per_minute():
        counts = per_minute.setdefault(row["minute"], {})
        if row["status"] is not None:
            counts[row["status"]] = row["count"]
    deliveries = await session.delivery_lag_per_minute()
    return Overview(
        totals=[row_as(row, StatusTotals) for row in await session.payment_totals()],
        waiting_for_buyers=await session.count_waiting_for_buyer(),
        manual_review_count=await session.count_manual_review(),
        manual_review=[
            row_as(row, FlaggedPayment) for row in await session.manual_review(MAX_LISTED)
        ],
        per_minute=[MinuteOfPayments(minute, counts) for minute, counts in per_minute.items()],
        deliveries_per_minute=[
            row_as(row, MinuteOfDeliveries) for row in deliveries if row["minute"] is not None
        ],
        # The row without a minute is the whole hour's.
        deliveries_in_the_hour=next(
            row_as(row, Deliveries) for row in deliveries if row["minute"] is None
        ),
    )


async def stuck_events(reader: Reader) -> list[StuckEvent]:
    rows = await reader.many(lambda session: session.stuck_events(MAX_LISTED))
    return [row_as(row, StuckEvent) for row in rows]


async def replay_jobs(reader: Reader) -> list[ReplayJobProgress]:
    rows = await reader.many(lambda session: session.replay_jobs(MAX_LISTED))
    return [row_as(row, ReplayJobProgress) for row in rows]


async def replay_job(reader: Reader, job_id: int) -> ReplayJobProgress | None:
    # A job just started may not be on the replica yet: Reader.one asks the primary then.
    row = await reader.one(lambda session: session.replay_job(job_id))
    return None if row is None else row_as(row, ReplayJobProgress)
