"""POST /api/v1/payments/batch: many orders in one call, each still its own payment.

The batch is a transport, not an entity (design DD-PAY-LIM-001, scenario 5.1): every
entry is decoded and answered as if it had been sent alone to POST /api/v1/payments/,
and only a malformed envelope is refused as a whole.
"""

from __future__ import annotations

from typing import Any

from litestar import Router, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import JSONBody

from service.api.auth import PaymentsAPI
from service.api.dependencies import WriteSide
from service.api.idempotency import IdempotencyMiddleware
from service.api.idempotency_store import current_claim
from service.api.nul_characters import check_json
from service.api.openapi import WRITE_PROBLEMS, problems
from service.api.operations import IdempotentOperation
from service.api.problems import domain_problem, http_problem
from service.api.schemas import (
    BatchItemResult,
    CreatePaymentRequest,
    CreatePaymentsRequest,
    CreatePaymentsResponse,
)
from service.api.strict_body import CreatePaymentsBody, strictly
from service.commands import CreatePayment, CreatePayments
from service.commands.create_payments import ItemOutcome, create_payments
from service.request_context import current_request_id
from service.settings import Settings


class PaymentBatchController(PaymentsAPI):
    path = "/api/v1/payments/batch"

    @post(
        "/",
        operation_id="createPayments",
        status_code=200,
        dto=CreatePaymentsBody,
        return_dto=None,
        middleware=[IdempotencyMiddleware()],
        operation_class=IdempotentOperation,
        responses=problems(
            (400, "invalid-request", "not an object with exactly `payments`, 1 to 1,000 entries"),
            *WRITE_PROBLEMS,
        ),
    )
    async def create_many(
        self, data: JSONBody[CreatePaymentsRequest], write: NamedDependency[WriteSide]
    ) -> CreatePaymentsResponse:
        """Pay many orders, each as its own payment, exactly as one create per entry would.

        200 with one result per entry, in request order: its status (201, 400, 402, 503),
        the payment (201, 402) or the problem the single create would have answered.
        Every 201 and 402 item sends its own order webhook.
        """
        results: dict[int, BatchItemResult] = {}
        accepted: list[tuple[int, CreatePayment]] = []
        request_id = current_request_id()
        for index, entry in enumerate(data.payments):
            try:
                # As the single create refuses it: a NUL named by its path in the entry.
                check_json(entry)
                body = strictly(entry, CreatePaymentRequest)
            except ValidationException as exc:
                problem = http_problem(exc)
                results[index] = BatchItemResult(index, _order_id_of(entry), 400, problem=problem)
                continue
            command = CreatePayment(body.order_id, body.amount, body.currency, request_id)
            accepted.append((index, command))
        outcomes = await create_payments(
            CreatePayments(tuple(command for _, command in accepted), request_id),
            write.uow,
            write.gateway,
            current_claim(),
        )
        for (index, command), outcome in zip(accepted, outcomes, strict=True):
            results[index] = _result(index, command.order_id, outcome)
        return CreatePaymentsResponse([results[index] for index in range(len(data.payments))])


def _result(index: int, order_id: int, outcome: ItemOutcome) -> BatchItemResult:
    if outcome.error is None:
        return BatchItemResult(index, order_id, 201, payment=outcome.payment)
    problem = domain_problem(outcome.error)
    return BatchItemResult(index, order_id, problem["status"], outcome.payment, problem)


def _order_id_of(entry: Any) -> int | None:
    order_id = entry.get("order_id") if isinstance(entry, dict) else None
    return order_id if isinstance(order_id, int) and not isinstance(order_id, bool) else None


def batch_router(settings: Settings) -> Router:
    """The batch endpoint with its own body limit (the app's limit is for single bodies)."""
    return Router(
        path="/",
        route_handlers=[PaymentBatchController],
        request_max_body_size=settings.server.max_batch_body_bytes,
    )
