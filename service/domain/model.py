"""The payment and the refund: one shape each, for the write side, the read side and the API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

import msgspec

from service.domain.rules import PaymentStatus


class Yen(Decimal):
    """An exact amount of yen.

    A Decimal, so rules and storage stay exact; a type of its own so that the API
    renders it as a JSON number (`89800.0`, `yen_to_json`) where msgspec would
    render a plain Decimal as a string.
    """


def yen_to_json(amount: Yen) -> float:
    # Whole yen up to 1,000,000 are exact as binary floats.
    return float(amount)


def yen_from_value(kind: type, value: Any) -> Any:
    """msgspec's dec_hook: a JSON or SQL number (never a bool or a string) as Yen."""
    if kind is Yen:
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise TypeError("Expected a JSON number")
        return Yen(value)
    raise NotImplementedError(f"no conversion to {kind!r}")


class RefundStatus(StrEnum):
    # Committed, the gateway not asked yet or not decided yet.
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    # The gateway refused it: the payment stays COMPLETED and may be refunded again.
    FAILED = "FAILED"


class Refund(msgspec.Struct, frozen=True):
    id: int
    payment_id: int
    amount: Yen
    reason: str
    status: RefundStatus
    created_at: datetime
    # Why the gateway refused it: set on a FAILED refund, null otherwise.
    failure_code: str | None = None
    failure_message: str | None = None


class BuyerAction(msgspec.Struct, frozen=True):
    """What the buyer's page does for a PENDING payment: hand `client_secret` to the
    gateway's client library (Stripe.js handleNextAction), which runs 3-D Secure."""

    type: Literal["authenticate"]
    client_secret: str


class Payment(msgspec.Struct, frozen=True):
    id: int
    order_id: int
    amount: Yen
    currency: str
    status: PaymentStatus
    payment_method: str
    transaction_id: UUID
    created_at: datetime
    updated_at: datetime
    # Why it failed (service/domain/failures.py): set on a FAILED payment, null otherwise.
    failure_code: str | None
    failure_message: str | None
    # The client's own keys and values, given on create (CONTRACT.md, "Metadata").
    metadata: dict[str, str]
    # The gateway's reference of the latest charge attempt (Stripe's pi_…): null until the
    # gateway answered.
    gateway_reference: str | None
    # While PENDING, what the buyer's page does next; null otherwise.
    next_action: BuyerAction | None


class PaymentAttempt(msgspec.Struct, frozen=True):
    """One try at charging a payment: the create, then each retry, each with its own
    transaction_id (the payment's is its latest attempt's)."""

    transaction_id: UUID
    status: PaymentStatus
    failure_code: str | None
    created_at: datetime
