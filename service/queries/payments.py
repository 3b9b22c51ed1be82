"""The payment resource of the GET endpoints, refunds and charge attempts included (view
`payment_resource`): one by id or by order, and the list of GET /api/v1/payments,
filtered, newest first, in keyset pages that never skip a payment committed late
(sql/payment_views.sql list_payments)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from service.db.queries import Row
from service.db.reader import Reader, ReadSession
from service.db.rows import row_as
from service.domain.errors import PaymentNotFound
from service.domain.model import Payment, PaymentAttempt, Refund
from service.domain.rules import MAX_ORDER_ID, PaymentStatus


class PaymentView(Payment, frozen=True):
    refunds: list[Refund]
    # Every try at charging it, oldest first: the create, then each retry.
    attempts: list[PaymentAttempt]


def view_of(row: Any) -> PaymentView:
    # The view renders refunds and attempts as JSON arrays, which arrive decoded.
    return row_as(row, PaymentView)


def _is_bigint_id(value: int) -> bool:
    # Ids outside bigint cannot exist; asking PostgreSQL would be an overflow error.
    return 1 <= value <= MAX_ORDER_ID


def _settled(row: Row) -> bool:
    # A create commits PROCESSING before it answers COMPLETED or FAILED: a replica a
    # moment behind must not show the client the payment it was just told is settled
    # as still processing, so an unsettled one is read again from the primary.
    return row["status"] not in (PaymentStatus.PENDING, PaymentStatus.PROCESSING)


async def payment_by_id(reader: Reader, payment_id: int) -> PaymentView | None:
    if not _is_bigint_id(payment_id):
        return None
    row = await reader.one(lambda session: session.payment_by_id(payment_id), _settled)
    return view_of(row) if row is not None else None


async def payment_by_order(reader: Reader, order_id: int) -> PaymentView | None:
    if not _is_bigint_id(order_id):
        return None
    row = await reader.one(lambda session: session.payment_by_order(order_id), _settled)
    return view_of(row) if row is not None else None


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
