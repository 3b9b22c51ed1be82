"""What the write side hands back: the stored rows, as plain structs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec


class PaymentRecord(msgspec.Struct, frozen=True):
    id: int
    order_id: int
    amount: Decimal
    currency: str
    status: str
    payment_method: str
    transaction_id: UUID
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> PaymentRecord:
        return cls(
            id=row["id"],
            order_id=row["order_id"],
            amount=row["amount"],
            currency=row["currency"],
            status=row["status"],
            payment_method=row["payment_method"],
            transaction_id=row["transaction_id"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


class RefundRecord(msgspec.Struct, frozen=True):
    id: int
    payment_id: int
    amount: Decimal
    reason: str
    status: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> RefundRecord:
        return cls(
            id=row["id"],
            payment_id=row["payment_id"],
            amount=row["amount"],
            reason=row["reason"],
            status=row["status"],
            created_at=row["created_at"],
        )
