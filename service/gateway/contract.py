"""What the service asks of a gateway that moves real money, in the service's own words.

A charge attempt and the gateway's decision on it, a refund and its decision, and an event
the gateway sent about either later. Nothing here names a gateway: each one is a module
that implements `Gateway` (service/gateway/stripe.py), so that adding one (PAY.JP, say)
adds a module and changes none.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar, Literal, Protocol, runtime_checkable
from uuid import UUID

import msgspec


class ChargeRequest(msgspec.Struct, frozen=True):
    """One charge attempt of a payment, as the gateway is asked about it, first and again."""

    # The charge attempt's id, and the gateway's idempotency key for it: asked again under
    # it, the gateway answers about the same charge instead of making a second one.
    transaction_id: UUID
    payment_id: int
    order_id: int
    # Whole yen.
    amount: Decimal
    # The buyer's payment method as the gateway's own client library made it (Stripe `pm_…`).
    payment_method_token: str | None = None
    metadata: dict[str, str] = {}
    # The gateway's reference of this attempt, once it answered (Stripe `pi_…`).
    reference: str | None = None


class ChargeOutcome(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    # Taken by the gateway, not decided yet: an event or a later status says how it ends.
    PROCESSING = "processing"
    # Waiting for the buyer to authenticate (3-D Secure): `next_action` says how.
    REQUIRES_ACTION = "requires_action"


class NextAction(msgspec.Struct, frozen=True):
    """What the buyer's page does next: hand `client_secret` to the gateway's client
    library, which runs the card issuer's authentication."""

    type: Literal["authenticate"]
    client_secret: str


class ChargeDecision(msgspec.Struct, frozen=True):
    """What the gateway answered about a charge attempt, and for a decline why: a failure
    code (service/domain/failures.py's) and, when the gateway words it itself, a message
    for people (without one the service stores its own sentence for the code; without a
    code, the generic decline)."""

    outcome: ChargeOutcome
    reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    next_action: NextAction | None = None

    APPROVED: ClassVar[ChargeDecision]
    PROCESSING: ClassVar[ChargeDecision]
    DECLINED: ClassVar[ChargeDecision]

    @classmethod
    def declined(cls, code: str | None = None, message: str | None = None) -> ChargeDecision:
        return cls(ChargeOutcome.DECLINED, failure_code=code, failure_message=message)


ChargeDecision.APPROVED = ChargeDecision(ChargeOutcome.APPROVED)
ChargeDecision.PROCESSING = ChargeDecision(ChargeOutcome.PROCESSING)
# A decline without a reason of its own.
ChargeDecision.DECLINED = ChargeDecision(ChargeOutcome.DECLINED)


class RefundRequest(msgspec.Struct, frozen=True):
    """One refund of a payment's captured charge, as the gateway is asked about it."""

    refund_id: int
    payment_id: int
    order_id: int
    # Whole yen.
    amount: Decimal
    # The payment's gateway reference (Stripe `pi_…`).
    charge_reference: str | None
    # The payment's charge attempt that was captured.
    transaction_id: UUID
    # The gateway's reference of this refund, once it answered (Stripe `re_…`).
    reference: str | None = None


class RefundOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    # Taken by the gateway, not done yet: an event or a later status says how it ends.
    PENDING = "pending"
    FAILED = "failed"


class RefundDecision(msgspec.Struct, frozen=True):
    outcome: RefundOutcome
    reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


class GatewayEvent(msgspec.Struct, frozen=True):
    """A verified event of the gateway about a charge or a refund, and what it now says."""

    # The gateway's id of the event: the same event delivered twice has the same id.
    event_id: str
    kind: Literal["charge", "refund"]
    charge_reference: str | None
    # The charge attempt's id, from what the service sent with the charge (an event
    # without one is none of the service's: parse_event gives None for it).
    transaction_id: UUID
    charge: ChargeDecision | None = None
    refund_reference: str | None = None
    # The refund's own id the service gave the gateway with it, when the event carries it.
    refund_id: int | None = None
    refund: RefundDecision | None = None


class GatewayUnavailable(Exception):
    """The gateway gave no decision: a timeout, a network error, a 5xx, a 429 past the
    time limit, or a refusal of the service's own credentials. Whatever was asked may or
    may not have happened; asking again about the same request tells."""


class MalformedEvent(ValueError):
    """A correctly signed body that is not an event the gateway documents."""


@runtime_checkable
class Gateway(Protocol):
    """A gateway that moves real money. Each call ends within the adapter's time limit,
    with a decision or GatewayUnavailable."""

    # Whether a charge needs the buyer's payment method (`payment_method_token`): a
    # request without one is the client's 400 before anything is stored.
    needs_payment_method: bool
    # Whether an event about a payment the service does not know is one to ignore (a
    # gateway account shared with other systems, as Stripe's is) rather than the
    # sender's mistake (the simulator's callback, naming a transaction_id: a 404).
    ignores_unknown_payments: bool
    # How long the gateway keeps a request's idempotency key, so that sending it again
    # answers about the first instead of making a second charge; None: for ever. A
    # charge never answered and older than this is left to manual review, not re-sent.
    resend_window_seconds: float | None

    async def charge(self, request: ChargeRequest) -> ChargeDecision:
        """Charge the buyer's payment method, once, under the attempt's transaction_id."""
        ...

    async def charge_status(self, request: ChargeRequest) -> ChargeDecision:
        """What became of the attempt: by its reference when known, else by asking for the
        same charge again under the same transaction_id (never a second charge)."""
        ...

    async def cancel(self, request: ChargeRequest) -> ChargeDecision:
        """Give up an attempt still waiting for its buyer. Answers what the attempt then
        is: declined once cancelled, approved when the buyer authenticated first."""
        ...

    async def refund(self, request: RefundRequest) -> RefundDecision:
        """Give the captured charge's money back, once, under the refund's id."""
        ...

    async def refund_status(self, request: RefundRequest) -> RefundDecision:
        """What became of the refund: by its reference when known, else by finding it or
        asking for the same refund again under the same id (never a second refund)."""
        ...

    def parse_event(self, body: bytes, headers: Mapping[str, str]) -> GatewayEvent | None:
        """The event of a signed request body, or None for an event the service does not
        act on (of another type, or about an object that carries no id of the service's).
        Raises service.signing.SignatureError for a missing, stale or wrong
        signature, MalformedEvent for a signed body that is no event."""
        ...

    async def aclose(self) -> None:
        """Close the adapter's connections."""
        ...
