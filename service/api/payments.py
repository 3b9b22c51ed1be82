"""The payments endpoints: create, read by id or order, refund."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, get, post, route
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter

from service.api.auth import PaymentsAPI
from service.api.dependencies import ReadSide, WriteSide
from service.api.idempotency import IdempotencyMiddleware
from service.api.idempotency_store import current_claim
from service.api.openapi import COMMON_PROBLEMS, WRITE_PROBLEMS, problems
from service.api.operations import IdempotentOperation, PaymentsOperation
from service.api.path_ids import PAYMENT_ID, TIMESTAMP, parse_id, parse_timestamp
from service.api.schemas import CreatePaymentRequest, RefundRequest
from service.api.strict_body import CreatePaymentBody, RefundBody
from service.commands import CreatePayment, RefundPayment
from service.commands.create_payment import create_payment
from service.commands.refund_payment import refund_payment
from service.domain.errors import PaymentNotFound
from service.domain.model import Payment, Refund
from service.domain.rules import MAX_ORDER_ID, PaymentStatus
from service.queries.payment_list import PaymentFilter, PaymentPage, list_payments
from service.queries.payment_views import PaymentView, payment_by_id, payment_by_order
from service.request_context import current_request_id

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
        command = CreatePayment(
            order_id=data.order_id,
            amount=data.amount,
            currency=data.currency,
            request_id=current_request_id(),
        )
        return await create_payment(command, write.uow, write.gateway, current_claim())

    @get(
        "/",
        operation_id="listPayments",
        operation_class=PaymentsOperation,
        responses=problems(
            (400, "invalid-request", "a parameter is not what it must be"),
            (404, "payment-not-found", "starting_after names no payment"),
            *COMMON_PROBLEMS,
        ),
    )
    async def by_filter(
        self,
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
        wanted = PaymentFilter(status, since, until, starting_after, limit)
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
            (400, "not-refundable", "the payment is not COMPLETED (or already REFUNDED)"),
            (400, "refund-amount-mismatch", "an amount other than the payment's (full only)"),
            (400, "invalid-refund", "empty or too long reason"),
            (404, "payment-not-found", "no payment with that id"),
            *COMMON_WRITE_PROBLEMS,
        ),
    )
    async def refund(
        self,
        data: JSONBody[RefundRequest],
        write: NamedDependency[WriteSide],
    ) -> Refund:
        """Full refund of a COMPLETED payment (once)."""
        command = RefundPayment(
            payment_id=data.payment_id,
            reason=data.reason,
            amount=data.amount,
            request_id=current_request_id(),
        )
        return await refund_payment(command, write.uow)
