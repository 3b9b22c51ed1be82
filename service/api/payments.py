"""The payments endpoints: create one order's payment or many (the batch), read them by
id, by order or as a list, retry a declined one, refund one.

The batch is a transport, not an entity (design DD-PAY-LIM-001, scenario 5.1): every
entry is decoded and answered as if it had been sent alone to POST /api/v1/payments/,
and only a malformed envelope is refused as a whole. A declined order is paid by
retrying its one payment (a second create stays 400 duplicate-order): the FAILED
payment goes through the create's sequence again under a new transaction_id.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

from litestar import Request, Response, Router, get, post, route
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath, JSONBody, Parameter

from service.api.auth import PaymentsAPI
from service.api.dependencies import ReadSide, WriteSide
from service.api.idempotency import IdempotencyMiddleware, current_claim
from service.api.nul_characters import check_json, may_hold_nul
from service.api.openapi import (
    COMMON_PROBLEMS,
    WRITE_PROBLEMS,
    IdempotentOperation,
    ListPaymentsOperation,
    PaymentsOperation,
    RetryOperation,
    problems,
)
from service.api.path_ids import (
    PAYMENT_ID,
    TIMESTAMP,
    parse_id,
    parse_metadata_filter,
    parse_timestamp,
)
from service.api.problems import domain_problem, http_problem
from service.api.schemas import (
    BatchItemResult,
    CreatePaymentRequest,
    CreatePaymentsRequest,
    CreatePaymentsResponse,
    RefundRequest,
    RetryRequest,
)
from service.api.strict_body import (
    CreatePaymentBody,
    CreatePaymentsBody,
    RefundBody,
    decode_json,
    strictly,
)
from service.commands import CreatePayment, CreatePayments, RetryPayment
from service.commands.charging import PaymentResult, create_payment, create_payments, retry_payment
from service.commands.refunding import refund_payment
from service.domain.errors import PaymentNotFound
from service.domain.model import Payment, Refund, RefundStatus
from service.domain.rules import MAX_ORDER_ID, PaymentStatus
from service.queries.payments import (
    PaymentFilter,
    PaymentPage,
    PaymentView,
    list_payments,
    payment_by_id,
    payment_by_order,
)
from service.request_context import answering_a_batch
from service.settings import Settings

COMMON_WRITE_PROBLEMS = (
    *WRITE_PROBLEMS,
    (503, "gateway-unavailable", "the gateway did not answer; the payment stays PROCESSING"),
)
MAX_PAGE = 100


class PaymentController(PaymentsAPI):
    path = "/api/v1/payments"

    @route("/", http_method=["OPTIONS"], include_in_schema=False)
    async def allowed_methods(self) -> Response[None]:
        """OPTIONS of the collection. Litestar's automatic answer names only the methods
        of the first handler registered for a path, and this one has two (list, create)."""
        return Response(None, status_code=204, headers={"Allow": "GET, OPTIONS, POST"})

    @post(
        "/",
        operation_id="createPayment",
        status_code=201,
        dto=CreatePaymentBody,
        return_dto=None,
        middleware=[IdempotencyMiddleware()],
        operation_class=IdempotentOperation,
        responses=problems(
            (400, "invalid-request", "the body is not a valid create request"),
            (400, "invalid-payment", "amount out of range or not whole yen"),
            (400, "duplicate-order", "the order already has a payment (any status)"),
            (402, "payment-declined", "declined; stored FAILED; payment_id, failure_code given"),
            *COMMON_WRITE_PROBLEMS,
        ),
    )
    async def create(
        self,
        data: JSONBody[CreatePaymentRequest],
        write: NamedDependency[WriteSide],
    ) -> Payment:
        """Pay one order: validate, record PROCESSING, charge, settle (design section 4).

        400 for a broken rule or a duplicate order_id, 402 when declined (stored FAILED).
        """
        return await create_payment(data, write.uow, write.gateway, current_claim())

    @get(
        "/",
        operation_id="listPayments",
        operation_class=ListPaymentsOperation,
        responses=problems(
            (400, "invalid-request", "a parameter is not what it must be"),
            (404, "payment-not-found", "starting_after names no payment"),
            *COMMON_PROBLEMS,
        ),
    )
    async def by_filter(
        self,
        request: Request[Any, Any, Any],
        read: NamedDependency[ReadSide],
        status: Annotated[
            PaymentStatus | None, Parameter(description="Only payments in this status.")
        ] = None,
        created_gte: Annotated[
            str | None,
            Parameter(description="Created at or after (RFC 3339).", schema_extra=TIMESTAMP),
        ] = None,
        created_lt: Annotated[
            str | None,
            Parameter(description="Created before (RFC 3339).", schema_extra=TIMESTAMP),
        ] = None,
        starting_after: Annotated[
            int | None,
            Parameter(ge=1, le=MAX_ORDER_ID, description="A payment id: the page after it."),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="Page size.")] = 20,
    ) -> PaymentPage:
        """Payments newest first, with their refunds; filters combine.

        `metadata[KEY]=VALUE` keeps the payments whose metadata has KEY with exactly
        VALUE (case-sensitive); several combine.

        Keyset pages: pass the last id of a page as `starting_after` for the next one;
        `has_more` says whether there is one (a `starting_after` of no payment is a 404).
        A payment is listed once every transaction older than the one that created it
        has ended (milliseconds, unless a long transaction runs), in the order of those
        transactions: newest first is id descending, except that payments created at the
        same moment by concurrent transactions may come in either order. So payments
        created while a client pages, and one whose creation commits late, come before
        its first page: no page repeats or skips one.
        """
        since = parse_timestamp(created_gte, "created_gte")
        until = parse_timestamp(created_lt, "created_lt")
        metadata = parse_metadata_filter(request.query_params.multi_items())
        wanted = PaymentFilter(status, since, until, metadata, starting_after, limit)
        return await list_payments(read.reader, wanted)

    @get(
        "/{payment_id:str}",
        operation_id="getPayment",
        operation_class=PaymentsOperation,
        responses=problems(
            (400, "invalid-request", "the id is not an integer"),
            (404, "payment-not-found", "no payment with that id"),
            *COMMON_PROBLEMS,
        ),
    )
    async def by_id(
        self,
        read: NamedDependency[ReadSide],
        payment_id: Annotated[str, PAYMENT_ID],
    ) -> PaymentView:
        """One payment with its refunds."""
        parsed = parse_id(payment_id)
        view = await payment_by_id(read.reader, parsed) if parsed is not None else None
        if view is None:
            raise PaymentNotFound(f"payment {payment_id[:40]} does not exist")
        return view

    @get(
        "/order/{order_id:int}",
        operation_id="getPaymentByOrder",
        operation_class=PaymentsOperation,
        responses=problems(
            (404, "payment-not-found", "the order has no payment"), *COMMON_PROBLEMS
        ),
    )
    async def by_order(
        self, read: NamedDependency[ReadSide], order_id: FromPath[int]
    ) -> PaymentView:
        """The payment of one order (1:1), with its refunds."""
        view = await payment_by_order(read.reader, order_id)
        if view is None:
            raise PaymentNotFound(f"order {order_id} has no payment")
        return view

    @post(
        "/refund",
        operation_id="refundPayment",
        status_code=201,
        dto=RefundBody,
        return_dto=None,
        middleware=[IdempotencyMiddleware()],
        operation_class=IdempotentOperation,
        responses=problems(
            (400, "invalid-request", "the body is not a valid refund request"),
            (
                400,
                "not-refundable",
                "the payment is not COMPLETED (or already REFUNDED), or a refund of it is PENDING",
            ),
            (400, "refund-amount-mismatch", "an amount other than the payment's (full only)"),
            (400, "invalid-refund", "empty or too long reason"),
            (402, "refund-failed", "refused by the gateway: stored FAILED, payment COMPLETED"),
            (404, "payment-not-found", "no payment with that id"),
            (503, "gateway-unavailable", "no gateway answer; the refund stays PENDING"),
            *WRITE_PROBLEMS,
        ),
    )
    async def refund(
        self,
        data: JSONBody[RefundRequest],
        write: NamedDependency[WriteSide],
    ) -> Response[Refund]:
        """Full refund of a COMPLETED payment, through the gateway: 201 the refund COMPLETED
        (the payment REFUNDED), 202 PENDING (the gateway decides later: its event or the
        reconciler settles it), 402 refused (the refund FAILED, with failure_code and
        failure_message; the payment stays COMPLETED and may be refunded again), 503 when
        the gateway did not answer (the refund stays PENDING and is reconciled)."""
        refund = await refund_payment(data, write.uow, write.gateway)
        return Response(refund, status_code=refund_status_code(refund))

    @post(
        "/{payment_id:str}/retry",
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
        """Charge a FAILED payment again, under a new transaction_id (a new charge attempt).

        201 the payment once approved (or PROCESSING, for an asynchronous gateway), 402
        declined again (stored FAILED, with failure_code and failure_message), 400
        not-retryable for any other status. Each charge attempt sends its own order webhook.
        """
        body = retry_body(await request.body(), request.headers.get("content-type"))
        parsed = parse_id(payment_id)
        if parsed is None:
            raise PaymentNotFound(f"payment {payment_id[:40]} does not exist")
        command = RetryPayment(parsed, body.payment_method_token)
        return await retry_payment(command, write.uow, write.gateway, current_claim())


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
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[CreatePaymentsRequest],
        write: NamedDependency[WriteSide],
    ) -> CreatePaymentsResponse:
        """Pay many orders, each as its own payment, exactly as one create per entry would.

        200 with one result per entry, in request order: its status (201, 400, 402, 503),
        the payment (201, 402) or the problem the single create would have answered.
        Every 201 and 402 item sends its own order webhook.
        """
        # The body as decoded (kept by the request): one search of it spares every entry's walk.
        nul_possible = may_hold_nul(await request.body())
        entries = [_decode_entry(entry, nul_possible) for entry in data.payments]
        commands = tuple(entry for entry in entries if not isinstance(entry, _Refused))
        with answering_a_batch():
            paid = iter(
                await create_payments(
                    CreatePayments(commands), write.uow, write.gateway, current_claim()
                )
            )
        results = [
            _result(index, entry, None if isinstance(entry, _Refused) else next(paid))
            for index, entry in enumerate(entries)
        ]
        return CreatePaymentsResponse(results)


def refund_status_code(refund: Refund) -> int:
    """What a refund is answered with, by the API and the console: 202 while the gateway
    has yet to settle it (PENDING: accepted, not done; CONTRACT.md, refunds), else 201."""
    return 202 if refund.status is RefundStatus.PENDING else 201


class _Refused(NamedTuple):
    """A batch entry that is not a create body: its 400, and its order_id if it has one."""

    problem: ValidationException
    order_id: int | None


def _decode_entry(entry: Any, nul_possible: bool) -> CreatePayment | _Refused:
    """A batch entry as the single create decodes its body: the command, or its 400.
    `nul_possible`: the batch's body holds the escape of NUL (service.api.nul_characters)."""
    try:
        # As the single create refuses it: a NUL named by its path in the entry.
        if nul_possible:
            check_json(entry)
        return strictly(entry, CreatePaymentRequest)
    except ValidationException as exc:
        order_id = entry.get("order_id") if isinstance(entry, dict) else None
        valid_id = isinstance(order_id, int) and not isinstance(order_id, bool)
        return _Refused(exc, order_id if valid_id else None)


def _result(
    index: int, entry: CreatePayment | _Refused, paid: PaymentResult | None
) -> BatchItemResult:
    if isinstance(entry, _Refused):
        return BatchItemResult(index, entry.order_id, 400, problem=http_problem(entry.problem))
    assert paid is not None
    if paid.error is None:
        return BatchItemResult(index, entry.order_id, 201, payment=paid.payment)
    problem = domain_problem(paid.error)
    return BatchItemResult(index, entry.order_id, problem["status"], paid.payment, problem)


def batch_router(settings: Settings) -> Router:
    """The batch endpoint with its own body limit (the app's limit is for single bodies)."""
    return Router(
        path="/",
        route_handlers=[PaymentBatchController],
        request_max_body_size=settings.server.max_batch_body_bytes,
    )


def retry_body(body: bytes, content_type: str | None) -> RetryRequest:
    """No body, `{}`, or `{"payment_method_token": …}`: anything else is a 400 (415 for
    another media type), so that a client that thinks the retry takes a new amount
    learns that it does not."""
    if not body.strip():
        return RetryRequest()
    data = decode_json(body, content_type)
    if may_hold_nul(body):
        check_json(data)
    return strictly(data, RetryRequest)
