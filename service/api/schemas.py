"""Request bodies of the API (msgspec Structs); answers are the domain's own shapes
(service/domain/model.py, service/queries/payment_views.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from service.domain.model import Payment, Yen
from service.domain.rules import MAX_ORDER_ID, MAX_REASON_LENGTH

Id = Annotated[int, Meta(ge=1, le=MAX_ORDER_ID)]


class CreatePaymentRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    order_id: Annotated[Id, Meta(description="The order to pay (one payment per order).")]
    amount: Annotated[
        Yen,
        Meta(description="Whole yen, 100 to 1,000,000 (JPY has no minor unit).", examples=[89800]),
    ]
    currency: Literal["JPY"] = "JPY"


MAX_BATCH_ITEMS = 1000


class CreatePaymentsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    payments: Annotated[
        list[Any],
        Meta(
            min_length=1,
            max_length=MAX_BATCH_ITEMS,
            description="1 to 1,000 create bodies, each checked on its own as "
            "POST /api/v1/payments/ checks its body.",
        ),
    ]


class BatchItemResult(msgspec.Struct, frozen=True, omit_defaults=True):
    index: Annotated[int, Meta(description="The entry's position in the request, from 0.")]
    order_id: Annotated[int | None, Meta(description="The entry's order_id; null if it has none.")]
    status: Annotated[int, Meta(description="The status the single create would have answered.")]
    payment: Annotated[Payment | None, Meta(description="For 201 and 402 (stored FAILED).")] = None
    problem: Annotated[
        dict[str, Any] | None,
        Meta(description="For 4xx and 5xx: the problem document the single create would answer."),
    ] = None


class CreatePaymentsResponse(msgspec.Struct, frozen=True):
    results: Annotated[list[BatchItemResult], Meta(description="One per entry, in request order.")]


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
