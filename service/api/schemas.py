"""Request bodies of the API (msgspec Structs); answers are the domain's own shapes
(service/domain/model.py, service/queries/payment_views.py)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from service.domain.model import Yen
from service.domain.rules import MAX_ORDER_ID, MAX_REASON_LENGTH

Id = Annotated[int, Meta(ge=1, le=MAX_ORDER_ID)]


class CreatePaymentRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    order_id: Annotated[Id, Meta(description="The order to pay (one payment per order).")]
    amount: Annotated[
        Yen,
        Meta(description="Whole yen, 100 to 1,000,000 (JPY has no minor unit).", examples=[89800]),
    ]
    currency: Literal["JPY"] = "JPY"


class RefundRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    payment_id: Id
    reason: Annotated[
        str, Meta(max_length=MAX_REASON_LENGTH, examples=["Order cancelled by customer"])
    ]
    amount: Annotated[
        Yen | None,
        Meta(description="Optional; full refunds only, so it must equal the payment's amount."),
    ] = None


class GatewayCallback(msgspec.Struct, frozen=True):
    transaction_id: UUID
    status: Literal["completed", "failed"]


class GatewayCallbackResponse(msgspec.Struct, frozen=True):
    payment_id: int
    status: str
