"""The payments list of GET /api/v1/payments: filtered, newest first, keyset pages."""

from __future__ import annotations

from datetime import datetime

import msgspec

from service.db.reader import Reader
from service.domain.rules import PaymentStatus
from service.queries.payment_views import PaymentView, view_of


class PaymentFilter(msgspec.Struct, frozen=True):
    status: PaymentStatus | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None
    starting_after: int | None = None  # a payment id: the page continues after it
    limit: int = 20


class PaymentPage(msgspec.Struct, frozen=True):
    data: list[PaymentView]
    has_more: bool


async def list_payments(reader: Reader, wanted: PaymentFilter) -> PaymentPage:
    """From the replica when it is current: a page may then lack the newest payments by
    up to the lag bound (service/db/reader.py); reading one by id never does."""
    rows = await reader.many(
        lambda q, conn: q.list_payments(
            conn,
            status=None if wanted.status is None else wanted.status.value,
            created_gte=wanted.created_gte,
            created_lt=wanted.created_lt,
            starting_after=wanted.starting_after,
            # One more than asked: whether another page follows, without counting.
            max_rows=wanted.limit + 1,
        )
    )
    views = [view_of(row) for row in rows]
    return PaymentPage(data=views[: wanted.limit], has_more=len(views) > wanted.limit)
