"""The OpenAPI document and its pages: problem responses per endpoint, bearer auth when it
is on, the webhook the Order Service receives (OpenAPI 3.1 `webhooks`), what Litestar
cannot infer from a handler's signature (request parts read by middleware or from raw
bytes, problem+json instead of Litestar's own error body), and the interactive docs.

Swagger UI (a release that reads OpenAPI 3.1, which Litestar writes) comes from the pip
package openapi-ui-bundles, pinned by the install and served from `ASSETS`: nothing is
loaded from a CDN, so the page works where payment services usually run (no internet
access) and executes only the code that was installed."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from litestar import Router
from litestar.enums import ParamType
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
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
from litestar.static_files import create_static_files_router
from openapi_ui_bundles.swagger_ui import static_path

from service.api.auth import READ_ONLY_SCHEME
from service.api.idempotency import MAX_KEY_LENGTH
from service.api.problems import PROBLEM_JSON, TYPE_PREFIX, Problem
from service.commands.messages import METADATA_KEY
from service.outbox.events import WebhookBody
from service.settings import Settings

ASSETS = "/schema-assets/swagger-ui"


def docs_assets() -> Router:
    return create_static_files_router(
        path=ASSETS, directories=[static_path], include_in_schema=False, name="docs-assets"
    )


def swagger_ui() -> SwaggerRenderPlugin:
    """Swagger UI at /schema and /schema/swagger, its scripts, styles and icon from ASSETS."""
    return SwaggerRenderPlugin(
        path=["/", "/swagger"],
        js_url=f"{ASSETS}/swagger-ui-bundle.js",
        css_url=f"{ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>",
    )


IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    required=False,
    description=(
        "Makes the request safe to retry: the first answer (unless 5xx) is stored for the key "
        "and replayed, with `Idempotent-Replayed: true`, for the same key and body; the same "
        "key with another body is 422, and 409 while the first request runs. A retry after a "
        "5xx answers with the payments the first try created, as they now stand (201, or "
        "402 once FAILED), never `duplicate-order`. Printable ASCII, "
        f'1 to {MAX_KEY_LENGTH} characters; a structured-field string ("...") is taken too.'
    ),
    schema=Schema(
        type=OpenAPIType.STRING,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        # Printable ASCII, no blank at either end (HTTP strips those anyway).
        pattern=r"^[!-~]([ -~]*[!-~])?$",
        examples=["3f0c2a9e-order-1234"],
    ),
)


def is_framework_error(response: OpenAPIResponse | Reference) -> bool:
    """Litestar's own error body (`status_code`, `detail`, `extra`), which it documents for
    every handler with parameters; the service answers problem+json instead (problems.py)."""
    if not isinstance(response, OpenAPIResponse):
        return False
    for media_type in (response.content or {}).values():
        schema = media_type.schema
        if isinstance(schema, Schema) and "status_code" in (schema.properties or {}):
            return True
    return False


@dataclass
class PaymentsOperation(Operation):
    """An operation of the payments API: it documents exactly the problems it answers.

    Its 401 only where the app requires a bearer token (the per-app router carries the
    security requirement, service/api/auth.py), and none of Litestar's own error bodies:
    every problem the service answers is declared on the handler. A write (one that
    declares the read-only token's 403) keeps its 403 and refuses the read-only scheme
    where read-only tokens are configured, and drops its 403 elsewhere.
    """

    def __post_init__(self) -> None:
        responses = self.responses or {}
        if not self.security:
            responses.pop("401", None)
        if "403" in responses:
            read_only = [r for r in self.security or [] if READ_ONLY_SCHEME in r]
            if read_only:
                self.security = [r for r in self.security or [] if r not in read_only]
            else:
                del responses["403"]
        for status in [
            status for status, answer in responses.items() if is_framework_error(answer)
        ]:
            del responses[status]


# The payments list's metadata filter, `metadata[KEY]=VALUE` (a deepObject parameter).
METADATA_FILTER = Parameter(
    name="metadata",
    param_in=ParamType.QUERY,
    required=False,
    style="deepObject",
    explode=True,
    description=(
        "`metadata[KEY]=VALUE`: only payments whose metadata has KEY with exactly VALUE "
        "(case-sensitive); several combine. A KEY no metadata can have is a 400."
    ),
    schema=Schema(
        type=OpenAPIType.OBJECT,
        property_names=Schema(pattern=f"^{METADATA_KEY.pattern}$"),
        additional_properties=Schema(type=OpenAPIType.STRING),
        examples=[{"customer": "c-4711"}],
    ),
)


@dataclass
class ListPaymentsOperation(PaymentsOperation):
    """The payments list reads its metadata filters from the query itself."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.parameters = [*(self.parameters or []), METADATA_FILTER]


@dataclass
class IdempotentOperation(PaymentsOperation):
    """The create, batch and refund commands: IdempotencyMiddleware reads the header."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.parameters = [*(self.parameters or []), IDEMPOTENCY_KEY]


@dataclass
class RetryOperation(IdempotentOperation):
    """The retry reads its body itself (it may be absent), so the document declares it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.request_body = RequestBody(
            required=False,
            description="`{}` or no body: charge the payment method of the attempt before; "
            '`{"payment_method_token": "pm_…"}`: the buyer\'s new one.',
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        additional_properties=False,
                        properties={
                            "payment_method_token": Schema(
                                type=OpenAPIType.STRING,
                                min_length=1,
                                max_length=255,
                                pattern=r"^[!-~]+$",
                            )
                        },
                    ),
                    example={},
                )
            },
        )


@dataclass
class GatewayCallbackOperation(Operation):
    """The callback handler reads raw bytes (to check the signature first), so its
    body schema is declared here rather than inferred."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="Signed with Standard Webhooks: webhook-id, webhook-timestamp, "
            "webhook-signature headers, keyed by PAYMENTS_GATEWAY_SECRET.",
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        required=["transaction_id", "status"],
                        properties={
                            "transaction_id": Schema(
                                type=OpenAPIType.STRING, format=OpenAPIFormat.UUID
                            ),
                            "status": Schema(type=OpenAPIType.STRING, enum=["completed", "failed"]),
                        },
                    ),
                    example={
                        "transaction_id": "3b1f8f0e-4f7e-4a57-9a55-0f4d7b1f2c11",
                        "status": "completed",
                    },
                )
            },
        )


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
