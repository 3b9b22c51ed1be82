"""What the service needs from a payment gateway."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar, Protocol, runtime_checkable
from uuid import UUID


class GatewayOutcome(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    # Asynchronous gateways answer later with a signed callback.
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class GatewayDecision:
    """What the gateway answered, and for a decline why: a failure code (the known ones
    are service/domain/failures.py's) and, when the gateway words it itself, a message
    for people. Without one the service's own sentence for the code is stored
    (service/commands/settlement.py); without a code, the generic decline."""

    outcome: GatewayOutcome
    failure_code: str | None = None
    failure_message: str | None = None

    APPROVED: ClassVar[GatewayDecision]
    PENDING: ClassVar[GatewayDecision]
    DECLINED: ClassVar[GatewayDecision]

    @classmethod
    def declined(cls, code: str | None = None, message: str | None = None) -> GatewayDecision:
        return cls(GatewayOutcome.DECLINED, code, message)


GatewayDecision.APPROVED = GatewayDecision(GatewayOutcome.APPROVED)
GatewayDecision.PENDING = GatewayDecision(GatewayOutcome.PENDING)
# A decline without a reason of its own.
GatewayDecision.DECLINED = GatewayDecision(GatewayOutcome.DECLINED)


@runtime_checkable
class PaymentGateway(Protocol):
    async def charge(self, transaction_id: UUID, order_id: int, amount: Decimal) -> GatewayDecision:
        """Ask the gateway to take the payment."""
        ...

    async def status(self, transaction_id: UUID, order_id: int, amount: Decimal) -> GatewayDecision:
        """Ask what became of an earlier charge (used by the reconciler)."""
        ...
