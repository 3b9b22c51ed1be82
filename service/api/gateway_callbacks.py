"""The payment gateway's signed callbacks."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException

from service.api.openapi import GatewayCallbackOperation, problems
from service.api.schemas import GatewayCallback, GatewayCallbackResponse
from service.commands import ApplyGatewayEvent
from service.commands.apply_gateway_event import apply_gateway_event
from service.db.unit_of_work import UnitOfWork
from service.settings import Settings
from service.signing import SignatureError, secret_key, verify

_decoder = msgspec.json.Decoder(GatewayCallback)
MAX_WEBHOOK_ID_LENGTH = 256


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
            (401, "invalid-signature", "bad, missing or stale Standard Webhooks signature"),
            (404, "payment-not-found", "unknown transaction_id"),
            (409, "transition-not-allowed", "the state machine forbids this change"),
            (503, "database-unavailable", "the database is unreachable; retry"),
        ),
    )
    async def callback(
        self,
        request: Request[Any, Any, Any],
        uow: NamedDependency[UnitOfWork],
        settings: NamedDependency[Settings],
        request_id: NamedDependency[str],
    ) -> GatewayCallbackResponse:
        """Settle a payment from a Standard Webhooks-signed gateway callback.

        Body `{"transaction_id": uuid, "status": "completed" | "failed"}`. The signature
        is checked on the raw body before anything is parsed. A repeated webhook-id,
        or the status the payment already has, is a 200 no-op.
        """
        body = await request.body()
        secret = settings.gateway.callback_secret
        if not secret:
            raise SignatureError("gateway callbacks are disabled: no gateway secret is configured")
        webhook_id = request.headers.get("webhook-id")
        if webhook_id is not None and len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:
            raise ValidationException(f"webhook-id longer than {MAX_WEBHOOK_ID_LENGTH} characters")
        verify(
            secret_key(secret),
            webhook_id,
            request.headers.get("webhook-timestamp"),
            request.headers.get("webhook-signature"),
            body,
            tolerance_seconds=settings.gateway.callback_tolerance_seconds,
        )
        try:
            callback = _decoder.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise ValidationException(f"malformed gateway callback: {exc}") from exc
        assert webhook_id is not None  # verify() refused a missing one
        payment = await apply_gateway_event(
            ApplyGatewayEvent(
                webhook_id=webhook_id,
                transaction_id=callback.transaction_id,
                status=callback.status,
                request_id=request_id,
            ),
            uow,
        )
        return GatewayCallbackResponse(payment_id=payment.id, status=payment.status)
