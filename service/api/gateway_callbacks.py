"""The payment gateway's signed callbacks."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException

from service.api import exact_json
from service.api.dependencies import WriteSide
from service.api.nul_characters import check_json, check_text
from service.api.openapi import GatewayCallbackOperation, problems
from service.api.schemas import GatewayCallback, GatewayCallbackResponse
from service.commands import ApplyGatewayEvent
from service.commands.gateway_events import apply_gateway_event
from service.signing import SignatureError, secret_keys, verify

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
        write: NamedDependency[WriteSide],
    ) -> GatewayCallbackResponse:
        """Settle a payment from a Standard Webhooks-signed gateway callback.

        Body `{"transaction_id": uuid, "status": "completed" | "failed"}`. The signature
        is checked on the raw body before anything is parsed. A repeated webhook-id,
        the status the payment already has, or "completed" for a payment refunded
        since, is a 200 no-op.
        """
        body = await request.body()
        settings = write.settings
        secrets = settings.gateway.callback_secrets
        if not secrets:
            raise SignatureError("gateway callbacks are disabled: no gateway secret is configured")
        webhook_id = request.headers.get("webhook-id")
        if webhook_id is not None:
            # Stored as the callback's identity (gateway_events), once verified.
            if len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:
                raise ValidationException(
                    f"webhook-id longer than {MAX_WEBHOOK_ID_LENGTH} characters"
                )
            check_text(webhook_id, "header webhook-id")
        verify(
            # Any of them: the gateway may sign with the old or the new one while it rotates.
            secret_keys(secrets),
            webhook_id,
            request.headers.get("webhook-timestamp"),
            request.headers.get("webhook-signature"),
            body,
            tolerance_seconds=settings.gateway.callback_tolerance_seconds,
        )
        try:
            # The exact decode, as for the API's bodies: a signed body with a key twice
            # (say "status") must not settle a payment by whichever value a parser keeps.
            decoded = exact_json.decode(body)
        except exact_json.MalformedJSON as exc:
            raise ValidationException(f"malformed gateway callback: {exc}") from exc
        check_json(decoded)
        try:
            callback = msgspec.convert(decoded, GatewayCallback)
        except msgspec.ValidationError as exc:
            raise ValidationException(f"malformed gateway callback: {exc}") from exc
        assert webhook_id is not None  # verify() refused a missing one
        payment = await apply_gateway_event(
            ApplyGatewayEvent(
                webhook_id=webhook_id,
                transaction_id=callback.transaction_id,
                status=callback.status,
            ),
            write.uow,
        )
        return GatewayCallbackResponse(payment_id=payment.id, status=payment.status)
