"""The commands: what a caller asks the write side to do."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import msgspec


class CreatePayment(msgspec.Struct, frozen=True):
    order_id: int
    amount: int | float | Decimal
    currency: str = "JPY"
    request_id: str | None = None


class CreatePayments(msgspec.Struct, frozen=True):
    """Pay many orders in one call, each as its own payment (a transport, not an entity)."""

    payments: tuple[CreatePayment, ...]
    request_id: str | None = None


class RetryPayment(msgspec.Struct, frozen=True):
    """Charge a FAILED payment again, under a new transaction_id (its order stays 1:1)."""

    payment_id: int
    request_id: str | None = None


class RefundPayment(msgspec.Struct, frozen=True):
    payment_id: int
    reason: str
    amount: int | float | Decimal | None = None
    request_id: str | None = None


class ApplyGatewayEvent(msgspec.Struct, frozen=True):
    webhook_id: str
    transaction_id: UUID
    status: str  # "completed" | "failed"
    request_id: str | None = None


class ReconcileStuckPayments(msgspec.Struct, frozen=True):
    """Ask the gateway about payments PROCESSING for over older_than_seconds, each once
    per lease_seconds across all processes; flag for manual review those it has still
    not decided after manual_review_after_seconds."""

    older_than_seconds: float
    lease_seconds: float
    manual_review_after_seconds: float
    max_payments: int = 100
