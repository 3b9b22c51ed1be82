"""The payment gateway's signed word, later: its events and callbacks."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException

from service.api.dependencies import WriteSide
from service.api.openapi import GatewayCallbackOperation, problems
from service.api.schemas import GatewayCallbackResponse
from service.commands import ApplyGatewayEvent
from service.commands.gateway_events import apply_gateway_event
from service.domain.errors import PaymentNotFound
from service.domain.model import Refund
from service.gateway import MalformedEvent

log = logging.getLogger(__name__)


class GatewayCallbackController(Controller):
    path = "/api/v1/payments/webhook"
    tags = ["gateway"]

    @post(
        "/",
        operation_id="applyGatewayCallback",
        status_code=200,
        operation_class=GatewayCallbackOperation,
        responses=problems(
            (400, "invalid-request", "malformed body or webhook-id"),
            (
                401,
                "invalid-signature",
                "bad, missing or stale signature (Standard Webhooks/Stripe)",
            ),
            (404, "payment-not-found", "unknown transaction_id"),
            (409, "transition-not-allowed", "the state machine forbids this change"),
            (503, "database-unavailable", "the database is unreachable; retry"),
        ),
    )
    async def callback(
        self,
        request: Request[Any, Any, Any],
        write: NamedDependency[WriteSide],
    ) -> GatewayCallbackResponse:
        """Apply the gateway's signed word on a charge attempt or a refund: the simulator's
        Standard Webhooks callback (`{"transaction_id": uuid, "status": "completed" |
        "failed"}`, headers webhook-id, webhook-timestamp, webhook-signature), or Stripe's
        event (header Stripe-Signature) with `[gateway] kind = "stripe"`.

        The signature is checked on the raw body before anything is parsed. A repeated
        event id, the status the payment already has, or "completed" for a payment
        refunded since, is a 200 no-op; so is a Stripe event of a type the service does
        not act on, or about a PaymentIntent it did not create.
        """
        body = await request.body()
        gateway = write.gateway
        try:
            event = gateway.parse_event(body, request.headers)
        except MalformedEvent as exc:
            raise ValidationException(str(exc)) from exc
        if event is None:
            # Of another type, or about a payment of another system sharing the account.
            return GatewayCallbackResponse(ignored="an event the service does not act on")
        try:
            result = await apply_gateway_event(ApplyGatewayEvent(event), write.uow)
        except PaymentNotFound as exc:
            if not gateway.ignores_unknown_payments:
                raise  # the callback named a transaction_id: the caller's mistake, a 404
            # A payment of another system sharing the gateway's account (Stripe's).
            log.info("gateway event %s ignored: %s", event.event_id, exc.detail)
            return GatewayCallbackResponse(ignored="not about a payment of this service")
        if isinstance(result, Refund):
            return GatewayCallbackResponse(result.payment_id, result.status, refund_id=result.id)
        return GatewayCallbackResponse(result.id, result.status)
