"""The payment resource of the GET endpoints, refunds included."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from service.db.sql import load_queries
from service.domain.rules import MAX_ORDER_ID


class RefundView(msgspec.Struct, frozen=True):
    id: int
    payment_id: int
    amount: float
    reason: str
    status: str
    created_at: datetime


class PaymentView(msgspec.Struct, frozen=True):
    id: int
    order_id: int
    amount: float
    currency: str
    status: str
    payment_method: str
    transaction_id: UUID
    created_at: datetime
    updated_at: datetime
    refunds: list[RefundView]


_refunds_decoder = msgspec.json.Decoder(list[RefundView])


def _view(row: Any) -> PaymentView:
    return PaymentView(
        id=row["id"],
        order_id=row["order_id"],
        # Whole yen up to 1,000,000: exact as a float; the contract renders numbers.
        amount=float(row["amount"]),
        currency=row["currency"],
        status=row["status"],
        payment_method=row["payment_method"],
        transaction_id=row["transaction_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        refunds=_refunds_decoder.decode(row["refunds"]),
    )


def _is_bigint_id(value: int) -> bool:
    # Ids outside bigint cannot exist; asking PostgreSQL would be an overflow error.
    return 1 <= value <= MAX_ORDER_ID


async def payment_by_id(pool: asyncpg.Pool, payment_id: int) -> PaymentView | None:
    if not _is_bigint_id(payment_id):
        return None
    row = await load_queries().payment_by_id(pool, payment_id=payment_id)
    return _view(row) if row is not None else None


async def payment_by_order(pool: asyncpg.Pool, order_id: int) -> PaymentView | None:
    if not _is_bigint_id(order_id):
        return None
    row = await load_queries().payment_by_order(pool, order_id=order_id)
    return _view(row) if row is not None else None
