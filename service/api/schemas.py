"""Request bodies of the API (msgspec Structs): the commands themselves where a body is
one (service/commands/messages.py), named for the document and refusing unknown fields;
answers are the domain's own shapes (service/domain/model.py,
service/queries/payment_views.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from service.commands import CreatePayment, RefundPayment
from service.domain.model import Payment


class CreatePaymentRequest(CreatePayment, frozen=True, forbid_unknown_fields=True):
    """The body of POST /api/v1/payments/ (and of each batch entry)."""


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


class RefundRequest(RefundPayment, frozen=True, forbid_unknown_fields=True):
    """The body of POST /api/v1/payments/refund."""


class GatewayCallback(msgspec.Struct, frozen=True):
    transaction_id: UUID
    status: Literal["completed", "failed"]


class GatewayCallbackResponse(msgspec.Struct, frozen=True):
    payment_id: int
    status: str
