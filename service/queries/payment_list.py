"""The payments list of GET /api/v1/payments: filtered, newest first, keyset pages that
never skip a payment committed late (sql/payment_views.sql list_payments)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import msgspec

from service.db.queries import Row
from service.db.reader import Reader, ReadSession
from service.domain.errors import PaymentNotFound
from service.domain.rules import PaymentStatus
from service.queries.payment_views import PaymentView, view_of


class PaymentFilter(msgspec.Struct, frozen=True):
    status: PaymentStatus | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None
    # Every key with its value, exactly (None: any metadata).
    metadata: dict[str, str] | None = None
    starting_after: int | None = None  # a payment id: the page continues after it
    limit: int = 20


class PaymentPage(msgspec.Struct, frozen=True):
    data: list[PaymentView]
    has_more: bool


class _Continued(NamedTuple):
    # Whether the server listed the cursor's payment already: only then does it have
    # every payment that comes after it, and its page is whole.
    listed: bool
    rows: list[Row]


async def list_payments(reader: Reader, wanted: PaymentFilter) -> PaymentPage:
    """From the replica when it is current: a first page may then lack the newest
    payments by up to the lag bound (service/db/reader.py); a page after a payment the
    replica does not list yet comes from the primary, so a walk never skips one."""
    after = wanted.starting_after
    if after is None:
        rows = await reader.many(lambda session: _page(session, wanted, None, None))
    else:
        continued = await reader.one(
            lambda session: _continued(session, wanted, after), lambda found: found.listed
        )
        if continued is None:
            raise PaymentNotFound(f"starting_after {after} is not the id of a payment")
        rows = continued.rows
    views = [view_of(row) for row in rows]
    return PaymentPage(data=views[: wanted.limit], has_more=len(views) > wanted.limit)


async def _continued(session: ReadSession, wanted: PaymentFilter, after: int) -> _Continued | None:
    """The page after the payment `after`, read with its place on one connection (one
    server, whose horizon only moves on between the two statements)."""
    cursor = await session.payment_list_cursor(after)
    if cursor is None:
        return None
    page = await _page(session, wanted, cursor["created_xid"], cursor["id"])
    return _Continued(cursor["listed"], page)


async def _page(
    session: ReadSession, wanted: PaymentFilter, after_xid: int | None, after_id: int | None
) -> list[Row]:
    return await session.list_payments(
        status=None if wanted.status is None else wanted.status.value,
        created_gte=wanted.created_gte,
        created_lt=wanted.created_lt,
        metadata=wanted.metadata,
        after_xid=after_xid,
        after_id=after_id,
        # One more than asked: whether another page follows, without counting.
        max_rows=wanted.limit + 1,
    )
