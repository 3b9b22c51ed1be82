"""POST /api/v1/payments/{payment_id}/retry: a declined order paid after all.

An order has exactly one payment, so a declined order is paid by retrying that payment
(a second create stays 400 duplicate-order): the FAILED payment goes through the
create's sequence again under a new transaction_id, and answers as a create does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi.spec import OpenAPIMediaType, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType

from service.api.auth import PaymentsAPI
from service.api.dependencies import WriteSide
from service.api.idempotency import IdempotencyMiddleware
from service.api.idempotency_store import current_claim
from service.api.nul_characters import check_json
from service.api.openapi import WRITE_PROBLEMS, problems
from service.api.operations import IdempotentOperation
from service.api.path_ids import PAYMENT_ID, parse_id
from service.api.strict_body import decode_json
from service.commands import RetryPayment
from service.commands.retry_payment import retry_payment
from service.domain.errors import PaymentNotFound
from service.domain.model import Payment
from service.request_context import current_request_id


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


def check_empty_body(body: bytes, content_type: str | None) -> None:
    """No body, or exactly an empty JSON object: anything else is a 400 (415 for
    another media type), so that a client that thinks the retry takes a new amount or
    card learns that it does not."""
    if not body.strip():
        return
    data = decode_json(body, content_type)
    check_json(data)
    if data != {}:
        raise ValidationException("the body must be {} or absent: a retry takes no fields")


class PaymentRetryController(PaymentsAPI):
    path = "/api/v1/payments/{payment_id:str}/retry"

    @post(
        "/",
        operation_id="retryPayment",
        status_code=201,
        middleware=[IdempotencyMiddleware()],
        operation_class=RetryOperation,
        responses=problems(
            (400, "invalid-request", "the id is not an integer, or the body is not {} or absent"),
            (400, "not-retryable", "the payment is not FAILED (or another retry runs)"),
            (402, "payment-declined", "declined again; payment_id, failure_code given"),
            (404, "payment-not-found", "no payment with that id"),
            (503, "gateway-unavailable", "no gateway answer; the payment stays PROCESSING"),
            *WRITE_PROBLEMS,
        ),
    )
    async def retry(
        self,
        request: Request[Any, Any, Any],
        write: NamedDependency[WriteSide],
        payment_id: Annotated[str, PAYMENT_ID],
    ) -> Payment:
        """Charge a FAILED payment again, under a new transaction_id (a new attempt).

        201 the payment once approved (or PROCESSING, for an asynchronous gateway), 402
        declined again (stored FAILED, with failure_code and failure_message), 400
        not-retryable for any other status. Each attempt sends its own order webhook.
        """
        check_empty_body(await request.body(), request.headers.get("content-type"))
        parsed = parse_id(payment_id)
        if parsed is None:
            raise PaymentNotFound(f"payment {payment_id[:40]} does not exist")
        command = RetryPayment(payment_id=parsed, request_id=current_request_id())
        return await retry_payment(command, write.uow, write.gateway, current_claim())
