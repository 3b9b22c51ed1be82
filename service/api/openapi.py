"""The OpenAPI document: problem responses per endpoint, bearer auth when it is on, and
the webhook the Order Service receives (OpenAPI 3.1 `webhooks`)."""

from __future__ import annotations

import msgspec
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    PathItem,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType

from service.api.auth import READ_ONLY_SCHEME
from service.api.docs import swagger_ui
from service.api.problems import PROBLEM_JSON, TYPE_PREFIX, Problem
from service.outbox.events import WebhookBody
from service.settings import Settings

# (status, problem slug, when) of what every payments operation, or every write, may answer.
COMMON_PROBLEMS = (
    # Dropped from the document when authentication is off (operations.PaymentsOperation).
    (401, "unauthorized", "the bearer token is missing or wrong"),
    (503, "database-unavailable", "the database is unreachable; retry"),
)
# Every operation that is not a read answers it, but only where read-only tokens are
# configured (operations.PaymentsOperation).
READ_ONLY_PROBLEM = (403, "read-only-token", "the bearer token is a read-only one")
WRITE_PROBLEMS = (
    READ_ONLY_PROBLEM,
    (409, "idempotency-key-in-use", "a request with this Idempotency-Key is still running"),
    (413, "body-too-large", "the body exceeds the configured limit"),
    (415, "unsupported-media-type", "the body is not application/json"),
    (422, "idempotency-key-reused", "this Idempotency-Key came with another body"),
    *COMMON_PROBLEMS,
)


def problems(*cases: tuple[int, str, str]) -> dict[int, ResponseSpec]:
    """Response specs for (status, problem slug, when) cases, grouped by status."""
    by_status: dict[int, list[tuple[str, str]]] = {}
    for status, slug, when in cases:
        by_status.setdefault(status, []).append((slug, when))
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            generate_examples=False,
            description="; ".join(f"`{TYPE_PREFIX}{slug}`: {when}" for slug, when in found),
            examples=[
                Example(
                    summary=slug,
                    value={
                        "type": TYPE_PREFIX + slug,
                        "title": "…",
                        "status": status,
                        "detail": when,
                    },
                )
                for slug, when in found
            ],
        )
        for status, found in by_status.items()
    }


def _flat_object_schema(struct: type[msgspec.Struct]) -> Schema:
    """A Struct of plain fields (strings, enums, formats) as an OpenAPI schema, closed."""
    info = msgspec.json.schema(struct)
    fields = info["$defs"][struct.__name__]
    return Schema(
        type=OpenAPIType.OBJECT,
        required=fields["required"],
        additional_properties=False,
        properties={
            name: Schema(
                type=OpenAPIType.STRING,
                enum=field.get("enum"),
                format=OpenAPIFormat(field["format"]) if "format" in field else None,
            )
            for name, field in fields["properties"].items()
        },
    )


ORDER_WEBHOOK = PathItem(
    post=Operation(
        summary="Order webhook (sent by this service to the Order Service)",
        description=(
            "POST {PAYMENTS_ORDER_SERVICE_URL}/api/v1/orders/{order_id}/webhook, one call per "
            "order event, at least once, in order per order. Any non-2xx answer is retried "
            "with exponential backoff; `webhook-id` stays the same on every retry. "
            "`webhook-signature` (Standard Webhooks, HMAC-SHA256 of "
            '"{webhook-id}.{webhook-timestamp}.{body}") is sent when '
            "PAYMENTS_WEBHOOK_SECRET is set: one space-separated `v1,` signature per "
            "configured secret (several while a secret is rotated; any one verifies)."
        ),
        operation_id="orderWebhook",
        parameters=[
            Parameter(
                name="webhook-id",
                param_in="header",
                required=True,
                schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.UUID),
            ),
            Parameter(
                name="webhook-timestamp",
                param_in="header",
                required=True,
                schema=Schema(type=OpenAPIType.INTEGER, description="unix seconds"),
            ),
            Parameter(
                name="webhook-signature",
                param_in="header",
                required=False,
                schema=Schema(type=OpenAPIType.STRING, examples=["v1,K5oZfzN95Z9UVu1E…"]),
            ),
        ],
        request_body=RequestBody(
            required=True,
            content={
                "application/json": OpenAPIMediaType(
                    schema=_flat_object_schema(WebhookBody),
                    example={
                        "payment_status": "completed",
                        "transaction_id": "3b1f8f0e-4f7e-4a57-9a55-0f4d7b1f2c11",
                    },
                )
            },
        ),
        responses={
            "2XX": OpenAPIResponse(description="Accepted; the event is marked delivered."),
            "default": OpenAPIResponse(description="Anything else (or no answer) is retried."),
        },
    )
)


BEARER_SCHEME = SecurityScheme(
    type="http",
    scheme="bearer",
    description="One of the tokens of [auth] tokens (PAYMENTS_API_TOKENS).",
)
READ_ONLY_TOKENS = (
    "A read-only token ([auth] read_only_tokens, PAYMENTS_API_READ_ONLY_TOKENS) may call "
    "the GET (and HEAD, OPTIONS) operations only; any other method answers 403 "
    "`read-only-token`."
)
READ_ONLY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    "bearer": SecurityScheme(
        type="http",
        scheme="bearer",
        description="One of the tokens of [auth] tokens (PAYMENTS_API_TOKENS): every "
        "operation. " + READ_ONLY_TOKENS,
    ),
    READ_ONLY_SCHEME: SecurityScheme(type="http", scheme="bearer", description=READ_ONLY_TOKENS),
}


def security_schemes(settings: Settings) -> dict[str, SecurityScheme | Reference] | None:
    """The bearer schemes of an app's document: none without tokens, the read-only one
    beside the full one when read-only tokens are configured."""
    if settings.auth.read_only_tokens:
        return READ_ONLY_SCHEMES
    return {"bearer": BEARER_SCHEME} if settings.auth.tokens else None


def openapi_config(settings: Settings) -> OpenAPIConfig:
    """The document of an app built from `settings`: the bearer schemes only when tokens are
    configured (the payments operations name them then, service/api/auth.py)."""
    schemes = security_schemes(settings)
    return OpenAPIConfig(
        title="Payment Service",
        version="1.0.0",
        description=(
            "Single-order payments (one payment per order, 100 to 1,000,000 JPY, whole yen), "
            "full refunds, signed gateway callbacks, and order webhooks from an outbox. "
            "Errors are RFC 9457 problem+json with a stable `type` per kind of error."
        ),
        path="/schema",
        render_plugins=[swagger_ui()],
        components=Components(security_schemes=schemes),
        webhooks={"orderWebhook": ORDER_WEBHOOK},
    )
