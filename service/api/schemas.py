"""The API's own types: request bodies (msgspec Structs: the commands themselves where a
body is one, service/commands/messages.py, named for the document and refusing unknown
fields), and how an amount of yen is written and documented. Answers are the domain's
own shapes (service/domain/model.py, service/queries/payments.py)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.plugins import OpenAPISchemaPlugin
from msgspec import Meta

from service.commands import CreatePayment, RefundPayment
from service.commands.messages import PaymentMethodToken
from service.domain.model import Payment, Yen, yen_to_json
from service.domain.rules import MAX_AMOUNT, MIN_AMOUNT

# The one encoder hook: a Yen is a JSON number (`89800.0`), never msgspec's Decimal string.
TYPE_ENCODERS: dict[Any, Any] = {Yen: yen_to_json}


class YenSchemaPlugin(OpenAPISchemaPlugin):
    """Documents a Yen as what the API sends and takes: a whole number within the limits."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return value is Yen

    def to_openapi_schema(self, field_definition: Any, schema_creator: Any) -> Schema:
        return Schema(
            type=OpenAPIType.NUMBER,
            minimum=float(MIN_AMOUNT),
            maximum=float(MAX_AMOUNT),
            multiple_of=1,
            description="Whole yen (JPY has no minor unit), per transaction.",
        )


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


class RetryRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of POST /api/v1/payments/{payment_id}/retry: `{}` (or none) to charge the
    payment method of the attempt before, or the buyer's new one."""

    payment_method_token: PaymentMethodToken | None = None


class RefundRequest(RefundPayment, frozen=True, forbid_unknown_fields=True):
    """The body of POST /api/v1/payments/refund."""


class GatewayCallbackResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """What an applied event left: the payment (and the refund it was about), or why the
    event changed nothing (`ignored`)."""

    payment_id: int | None = None
    status: str | None = None
    refund_id: int | None = None
    ignored: str | None = None
