"""The one place where errors become RFC 9457 problem+json responses."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from service.api.auth import ReadOnlyToken

# Re-exported: the readiness check answers 503 on the same errors as every endpoint.
from service.api.idempotency import IdempotencyKeyInUse, IdempotencyKeyReused
from service.db.errors import DATABASE_DOWN as DATABASE_DOWN
from service.domain import errors
from service.signing import SignatureError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "https://payments.example/problems/"

# Domain error class -> (HTTP status, problem type slug, title).
DOMAIN_PROBLEMS: dict[type[errors.DomainError], tuple[int, str, str]] = {
    errors.InvalidPayment: (400, "invalid-payment", "Payment breaks a business rule"),
    errors.DuplicateOrder: (400, "duplicate-order", "Order already has a payment"),
    errors.PaymentDeclined: (402, "payment-declined", "Payment declined by the gateway"),
    errors.PaymentNotFound: (404, "payment-not-found", "Payment not found"),
    errors.NotRefundable: (400, "not-refundable", "Payment cannot be refunded"),
    errors.NotRetryable: (400, "not-retryable", "Payment cannot be retried"),
    errors.RefundAmountMismatch: (400, "refund-amount-mismatch", "Full refunds only"),
    errors.InvalidRefund: (400, "invalid-refund", "Refund request breaks a business rule"),
    errors.TransitionNotAllowed: (409, "transition-not-allowed", "Status change not allowed"),
    errors.GatewayUnavailable: (503, "gateway-unavailable", "Payment gateway unavailable"),
    errors.RefundFailed: (402, "refund-failed", "Refund refused by the gateway"),
}

# The service's own HTTP-level errors -> (slug, title): chosen by class, so that
# another 409 or 422 can never be reported as an idempotency problem.
HTTP_ERROR_PROBLEMS: dict[type[HTTPException], tuple[str, str]] = {
    IdempotencyKeyInUse: ("idempotency-key-in-use", "Idempotency key in use"),
    IdempotencyKeyReused: ("idempotency-key-reused", "Idempotency key reused with another body"),
    ReadOnlyToken: ("read-only-token", "Read-only token"),
}
# What the framework raises for generic failures, by status -> (slug, title).
HTTP_PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("invalid-request", "Invalid request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    408: ("request-timeout", "Request timeout"),
    413: ("body-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


class Problem(msgspec.Struct, frozen=True):
    """An RFC 9457 problem document (documented shape of every error response)."""

    type: str
    title: str
    status: int
    detail: str


def problem_document(
    status: int, slug: str, title: str, detail: str, **extra: Any
) -> dict[str, Any]:
    """The body of a problem+json answer: what an error response and a batch item both carry."""
    body = {"type": TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}
    body.update(extra)
    return body


def domain_problem(exc: errors.DomainError) -> dict[str, Any]:
    status, slug, title = DOMAIN_PROBLEMS[type(exc)]
    return problem_document(status, slug, title, exc.detail, **exc.extra)


def http_problem(exc: HTTPException) -> dict[str, Any]:
    slug, title = HTTP_ERROR_PROBLEMS.get(type(exc)) or HTTP_PROBLEMS.get(
        exc.status_code, ("http-error", "HTTP error")
    )
    extra: dict[str, Any] = {}
    detail = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        # msgspec says exactly what is wrong and where ("Expected `int`, got `str` - at `$.x`").
        messages = [_message(item) for item in exc.extra if isinstance(item, dict)]
        detail = "; ".join(m for m in messages if m) or detail
        extra["errors"] = exc.extra
    return problem_document(exc.status_code, slug, title, detail, **extra)


def respond(body: dict[str, Any]) -> Response[dict[str, Any]]:
    status = body["status"]
    headers = {"Retry-After": "1"} if status == 503 else None
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem(
    status: int, slug: str, title: str, detail: str, **extra: Any
) -> Response[dict[str, Any]]:
    return respond(problem_document(status, slug, title, detail, **extra))


def domain_error(_: Request[Any, Any, Any], exc: errors.DomainError) -> Response[Any]:
    return respond(domain_problem(exc))


def signature_error(_: Request[Any, Any, Any], exc: SignatureError) -> Response[Any]:
    return problem(401, "invalid-signature", "Invalid gateway signature", str(exc))


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    response = respond(http_problem(exc))
    headers = getattr(exc, "headers", None) or None
    if headers:
        response.headers.update(headers)
    return response


def _message(item: dict[str, Any]) -> str:
    # Litestar reports a missing body as a KeyError on its `data` parameter.
    if item.get("key") == "data" and item.get("message") == "'data'":
        return "a JSON request body is required"
    return str(item.get("message", ""))


def unexpected_problem(request: Request[Any, Any, Any], exc: Exception) -> dict[str, Any]:
    """The problem an error no handler expected is answered with (by the API and the
    console), logged: 503 while the database is unreachable, else 500 with its traceback."""
    if isinstance(exc, DATABASE_DOWN):
        log.warning("database unavailable during %s %s: %r", request.method, request.url.path, exc)
        return problem_document(
            503,
            "database-unavailable",
            "Database unavailable",
            "the database is unreachable; retry",
        )
    log.exception("unexpected error during %s %s", request.method, request.url.path)
    return problem_document(
        500, "internal-error", "Internal server error", "an unexpected error occurred"
    )


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return respond(unexpected_problem(request, exc))


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    errors.DomainError: domain_error,
    SignatureError: signature_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
