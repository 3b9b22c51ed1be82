"""The commands: what a caller asks the write side to do.

The API's request bodies are these Structs (service/api/schemas.py names them for the
document and refuses unknown fields), so a field a client sends is declared once, here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from service.domain.model import Yen
from service.domain.rules import MAX_ORDER_ID, MAX_REASON_LENGTH
from service.gateway import GatewayEvent

# An order's or a payment's id: a PostgreSQL bigint from 1.
Id = Annotated[int, Meta(ge=1, le=MAX_ORDER_ID)]


# Text PostgreSQL can store: no NUL (U+0000). Stated in the schema only; the API refuses a
# NUL itself, naming where it is (service/api/nul_characters.py).
WITHOUT_NUL = {"pattern": "^[^\\u0000]*$"}

# Metadata (CONTRACT.md, "Metadata"): Stripe's limits, lengths in characters.
MAX_METADATA_KEYS = 20
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
METADATA_KEY = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_METADATA_KEY_LENGTH}}}")
Metadata = Annotated[
    dict[str, Any],
    Meta(
        description=(
            f"Up to {MAX_METADATA_KEYS} keys of 1 to {MAX_METADATA_KEY_LENGTH} characters "
            f"[A-Za-z0-9_.-], each with a string of up to {MAX_METADATA_VALUE_LENGTH} "
            "characters; stored as given, returned with the payment, searchable."
        ),
        examples=[{"customer": "c-4711", "campaign": "winter"}],
        extra_json_schema={
            "maxProperties": MAX_METADATA_KEYS,
            "propertyNames": {"pattern": f"^{METADATA_KEY.pattern}$"},
            "additionalProperties": {
                "type": "string",
                "maxLength": MAX_METADATA_VALUE_LENGTH,
                **WITHOUT_NUL,
            },
        },
    ),
]


def metadata_problem(metadata: dict[str, Any]) -> str | None:
    """What is wrong with metadata, naming the key (or metadata itself); None if nothing."""
    if len(metadata) > MAX_METADATA_KEYS:
        return f"metadata may have at most {MAX_METADATA_KEYS} keys, not {len(metadata)}"
    for key, value in metadata.items():
        if not METADATA_KEY.fullmatch(key):
            return (
                f"metadata key {key[:60]!r} must be 1 to {MAX_METADATA_KEY_LENGTH} "
                "characters of A-Z, a-z, 0-9, '_', '.', '-'"
            )
        if not isinstance(value, str):
            return f"metadata[{key!r}] must be a string, not {type(value).__name__}"
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            return (
                f"metadata[{key!r}] must be at most {MAX_METADATA_VALUE_LENGTH} characters, "
                f"not {len(value)}"
            )
    return None


# The buyer's payment method as the gateway's own client library made it in the buyer's
# browser or app (Stripe's pm_…): required where the gateway charges one (Stripe), ignored
# by the simulator.
PaymentMethodToken = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=255,
        pattern=r"^[!-~]+$",
        description="The gateway's reference of the buyer's payment method (Stripe `pm_…`), "
        "made by the gateway's client library; required with Stripe, ignored by the simulator.",
        examples=["pm_card_visa"],
    ),
]


class CreatePayment(msgspec.Struct, frozen=True):
    """Pay one order: its one payment, charged through the design's sequence."""

    order_id: Annotated[Id, Meta(description="The order to pay (one payment per order).")]
    amount: Annotated[
        Yen,
        Meta(description="Whole yen, 100 to 1,000,000 (JPY has no minor unit).", examples=[89800]),
    ]
    currency: Literal["JPY"] = "JPY"
    metadata: Metadata = {}
    payment_method_token: PaymentMethodToken | None = None

    def __post_init__(self) -> None:
        # Refused as the body's 400 (a batch entry's own), naming the key.
        if (problem := metadata_problem(self.metadata)) is not None:
            raise ValueError(problem)


class CreatePayments(msgspec.Struct, frozen=True):
    """Pay many orders in one call, each as its own payment (a transport, not an entity)."""

    payments: tuple[CreatePayment, ...]


class RetryPayment(msgspec.Struct, frozen=True):
    """Charge a FAILED payment again, under a new transaction_id (its order stays 1:1),
    with the buyer's new payment method when given (they chose another card)."""

    payment_id: int
    payment_method_token: PaymentMethodToken | None = None


class RefundPayment(msgspec.Struct, frozen=True):
    """Refund a COMPLETED payment in full."""

    payment_id: Id
    reason: Annotated[
        str,
        Meta(
            max_length=MAX_REASON_LENGTH,
            examples=["Order cancelled by customer"],
            extra_json_schema=WITHOUT_NUL,
        ),
    ]
    amount: Annotated[
        Yen | None,
        Meta(description="Optional; full refunds only, so it must equal the payment's amount."),
    ] = None


class ApplyGatewayEvent(msgspec.Struct, frozen=True):
    """A verified event of the gateway (a Stripe event, a simulator's callback): what a
    charge attempt or a refund now is."""

    event: GatewayEvent


class ReconcileStuckPayments(msgspec.Struct, frozen=True):
    """Ask the gateway about payments PROCESSING for over older_than_seconds (and refunds
    PENDING as long), each once per lease_seconds across all processes; flag for manual
    review those it has still not decided after manual_review_after_seconds; cancel at the
    gateway the payments whose buyer has not authenticated within
    authentication_timeout_seconds."""

    older_than_seconds: float
    lease_seconds: float
    manual_review_after_seconds: float
    authentication_timeout_seconds: float = 3600.0
    max_payments: int = 100


class RedeliverEvent(msgspec.Struct, frozen=True):
    """Send one order webhook again now, whatever its state, keeping its order's order."""

    event_id: UUID


class ReplayDeadEvents(msgspec.Struct, frozen=True):
    """Give dead events a fresh set of delivery attempts, due now. Filters combine; with
    none, `all_dead` must be set, so a bare command replays nothing."""

    event_id: UUID | None = None
    order_id: int | None = None
    dead_since: datetime | None = None
    all_dead: bool = False


class RetryWaitingEvents(msgspec.Struct, frozen=True):
    """Make waiting events (a retry later, or blocked) due now, with the earlier events
    of their order they wait for. Filters combine; with none, `all_waiting` must be set."""

    event_id: UUID | None = None
    order_id: int | None = None
    created_since: datetime | None = None
    all_waiting: bool = False


class StartReplayJob(msgspec.Struct, frozen=True):
    """Replay every dead event dead since a time, as a job kept with the events it made
    due, so that its progress can be followed (the operator console)."""

    dead_since: datetime
    # Who: the fingerprint of the token that asked ('' on an open console).
    started_by: str
