"""What the service needs from a payment gateway."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable
from uuid import UUID


class GatewayDecision(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    # Asynchronous gateways answer later with a signed callback.
    PENDING = "pending"


@runtime_checkable
class PaymentGateway(Protocol):
    async def charge(self, transaction_id: UUID, order_id: int, amount: Decimal) -> GatewayDecision:
        """Ask the gateway to take the payment."""
        ...

    async def status(self, transaction_id: UUID, order_id: int, amount: Decimal) -> GatewayDecision:
        """Ask what became of an earlier charge (used by the reconciler)."""
        ...
