"""Request and response bodies of the payments API (msgspec Structs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from service.commands.results import PaymentRecord, RefundRecord
from service.domain.rules import MAX_ORDER_ID

Id = Annotated[int, Meta(ge=1, le=MAX_ORDER_ID)]


# `amount` is typed float so that it is documented as a plain JSON number (100 and 100.0
# alike); at run time it holds the exact int or Decimal the client wrote (strict_body.py).


class CreatePaymentRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    order_id: Annotated[Id, Meta(description="The order to pay (one payment per order).")]
    amount: Annotated[
        float,
        Meta(description="Whole yen, 100 to 1,000,000 (JPY has no minor unit).", examples=[89800]),
    ]
    currency: Literal["JPY"] = "JPY"


class RefundRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    payment_id: Id
    reason: Annotated[str, Meta(max_length=500, examples=["Order cancelled by customer"])]
    amount: Annotated[
        float | None,
        Meta(description="Optional; full refunds only, so it must equal the payment's amount."),
    ] = None


class GatewayCallback(msgspec.Struct, frozen=True):
    transaction_id: UUID
    status: Literal["completed", "failed"]


class PaymentResponse(msgspec.Struct, frozen=True):
    id: int
    order_id: int
    amount: float
    currency: str
    status: str
    payment_method: str
    transaction_id: UUID
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, payment: PaymentRecord) -> PaymentResponse:
        return cls(
            id=payment.id,
            order_id=payment.order_id,
            amount=float(payment.amount),
            currency=payment.currency,
            status=payment.status,
            payment_method=payment.payment_method,
            transaction_id=payment.transaction_id,
            created_at=payment.created_at,
            updated_at=payment.updated_at,
        )


class RefundResponse(msgspec.Struct, frozen=True):
    id: int
    payment_id: int
    amount: float
    reason: str
    status: str
    created_at: datetime

    @classmethod
    def of(cls, refund: RefundRecord) -> RefundResponse:
        return cls(
            id=refund.id,
            payment_id=refund.payment_id,
            amount=float(refund.amount),
            reason=refund.reason,
            status=refund.status,
            created_at=refund.created_at,
        )


class GatewayCallbackResponse(msgspec.Struct, frozen=True):
    payment_id: int
    status: str
