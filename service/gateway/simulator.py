"""The built-in gateway: approves everything except the configured decline rule, refunds
everything except the configured refusal rule, and takes Standard Webhooks callbacks as
its events."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Literal
from uuid import UUID

import msgspec

from service import exact_json
from service.gateway.contract import (
    ChargeDecision,
    ChargeOutcome,
    ChargeRequest,
    GatewayEvent,
    MalformedEvent,
    RefundDecision,
    RefundOutcome,
    RefundRequest,
)
from service.settings import GatewaySettings
from service.signing import SignatureError, secret_keys, verify

# A callback's webhook-id is stored as its identity (gateway_events).
MAX_WEBHOOK_ID_LENGTH = 256
# The code of a refund the simulator refuses (refuse_refund_amounts).
REFUND_REFUSED = "refund_failed"
REFUSAL_MESSAGE = "The simulator refuses to refund this amount (gateway.refuse_refund_amounts)."


class _Callback(msgspec.Struct, frozen=True):
    """A gateway callback's body: how one charge attempt ended."""

    transaction_id: UUID
    status: Literal["completed", "failed"]


# A callback says only "failed": the decline gets the generic code (card_declined,
# service/domain/failures.py) and its message.
REPORTED = {"completed": ChargeDecision.APPROVED, "failed": ChargeDecision.DECLINED}


class SimulatedGateway:
    """A deterministic stand-in for a card processor, and the Gateway of the service's
    default configuration (service/gateway/contract.py).

    In "sync" mode `charge` decides at once. In "async" mode it answers PROCESSING and the
    decision arrives later as a signed callback; asked for the status (by the
    reconciler, when no callback came), it gives the decision it made. An amount of
    `decline_codes` is declined with its code, one of `decline_amounts` without one (the
    service stores the generic decline, card_declined). The decision depends on the
    amount alone, so a retry of a declined payment is declined again until the rule
    changes (a restart with other settings: the customer fixed their card). A refund of
    an amount of `refuse_refund_amounts` is refused; any other is made at once. Its
    references are its own: `sim_` and the charge attempt's id, `simre_` and the refund's.
    """

    # The simulator takes a charge without a payment method of the buyer's.
    needs_payment_method = False
    # A callback names a transaction_id: one of no payment is the sender's mistake.
    ignores_unknown_payments = False
    # Nothing asked expires: a charge is asked about again however old.
    resend_window_seconds: float | None = None

    def __init__(self, settings: GatewaySettings) -> None:
        self._asynchronous = settings.mode == "async"
        declined = map(Decimal, settings.decline_amounts)
        self._declines = dict.fromkeys(declined, ChargeDecision.DECLINED)
        self._declines.update(
            (Decimal(amount), ChargeDecision.declined(code))
            for amount, code in settings.decline_codes.items()
        )
        self._refusals = frozenset(map(Decimal, settings.refuse_refund_amounts))
        self._callback_keys = secret_keys(settings.callback_secrets)
        self._tolerance = settings.callback_tolerance_seconds

    def _decide(self, request: ChargeRequest) -> ChargeDecision:
        decision = self._declines.get(request.amount, ChargeDecision.APPROVED)
        return msgspec.structs.replace(decision, reference=f"sim_{request.transaction_id}")

    async def charge(self, request: ChargeRequest) -> ChargeDecision:
        if self._asynchronous:
            # Undecided, and nothing to store meanwhile: the reference comes with the
            # callback (or the reconciler's question) that decides.
            return ChargeDecision(ChargeOutcome.PROCESSING)
        return self._decide(request)

    async def charge_status(self, request: ChargeRequest) -> ChargeDecision:
        return self._decide(request)

    async def cancel(self, request: ChargeRequest) -> ChargeDecision:
        # The attempt is given up: the buyer never authenticated.
        return ChargeDecision(
            ChargeOutcome.DECLINED,
            f"sim_{request.transaction_id}",
            "authentication_required",
            "The buyer did not authenticate the payment in time.",
        )

    async def refund(self, request: RefundRequest) -> RefundDecision:
        reference = f"simre_{request.refund_id}"
        if request.amount in self._refusals:
            return RefundDecision(RefundOutcome.FAILED, reference, REFUND_REFUSED, REFUSAL_MESSAGE)
        return RefundDecision(RefundOutcome.SUCCEEDED, reference)

    async def refund_status(self, request: RefundRequest) -> RefundDecision:
        return await self.refund(request)

    def parse_event(self, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        """A Standard Webhooks callback `{"transaction_id", "status"}`, its signature checked
        on the raw body before anything of it is read (CONTRACT.md, "Gateway callbacks")."""
        if not self._callback_keys:
            raise SignatureError("gateway callbacks are disabled: no gateway secret is configured")
        webhook_id = headers.get("webhook-id")
        if webhook_id is not None and "\x00" in webhook_id:
            raise MalformedEvent("header webhook-id must not hold a NUL character (U+0000)")
        if webhook_id is not None and len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:
            raise MalformedEvent(
                f"header webhook-id must be at most {MAX_WEBHOOK_ID_LENGTH} characters"
            )
        verify(
            # Any of them: the gateway may sign with the old or the new one while it rotates.
            self._callback_keys,
            webhook_id,
            headers.get("webhook-timestamp"),
            headers.get("webhook-signature"),
            body,
            tolerance_seconds=self._tolerance,
        )
        assert webhook_id is not None  # verify() refused a missing one
        try:
            # The exact decode, as for the API's bodies: a signed body with a key twice
            # (say "status") must not settle a payment by whichever value a parser keeps.
            decoded = exact_json.decode(body)
            if isinstance(decoded, dict):
                for key, value in decoded.items():
                    if "\x00" in key or (isinstance(value, str) and "\x00" in value):
                        raise MalformedEvent(f"`$.{key}` must not hold a NUL character (U+0000)")
            callback = msgspec.convert(decoded, _Callback)
        except (exact_json.MalformedJSON, msgspec.ValidationError) as exc:
            raise MalformedEvent(f"malformed gateway callback: {exc}") from exc
        return GatewayEvent(
            event_id=webhook_id,
            kind="charge",
            charge_reference=f"sim_{callback.transaction_id}",
            transaction_id=callback.transaction_id,
            charge=REPORTED[callback.status],
        )

    async def aclose(self) -> None:
        return None
