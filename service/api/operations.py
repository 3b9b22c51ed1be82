"""OpenAPI operations for what Litestar cannot infer from a handler's signature:
request parts read by middleware or from raw bytes, not by handler parameters, and
error responses that are problem+json, not Litestar's own error body."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType

from service.api.auth import READ_ONLY_SCHEME
from service.api.idempotency import MAX_KEY_LENGTH

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
    """The retry reads its (empty) body itself, so the document declares it here."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.request_body = RequestBody(
            required=False,
            description="Nothing to say: `{}`, or no body at all.",
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.OBJECT, max_properties=0), example={}
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
