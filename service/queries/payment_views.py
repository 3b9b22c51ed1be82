"""The payment resource of the GET endpoints, refunds and attempts included (view
`payment_resource`)."""

from __future__ import annotations

from typing import Any

from service.db.queries import Row
from service.db.reader import Reader
from service.db.rows import row_as
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
