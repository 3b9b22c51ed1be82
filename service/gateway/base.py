"""What the service asks of a payment gateway, and what a gateway answers."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import ClassVar, Protocol, runtime_checkable
from uuid import UUID

import msgspec


class ChargeRequest(msgspec.Struct, frozen=True):
    """One charge attempt of a payment: what the gateway is asked to take."""

    # The charge attempt's own id: the gateway's idempotency key for it.
    transaction_id: UUID
    payment_id: int
    order_id: int
    amount: Decimal  # whole yen
    # The payment's metadata, for the gateway to keep with the charge.
    metadata: dict[str, str] = {}


class ChargeOutcome(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    # Not decided yet: a callback (or the reconciler's question) settles it later.
    PROCESSING = "processing"


class ChargeDecision(msgspec.Struct, frozen=True):
    """What the gateway answered, and for a decline why: a failure code (the known ones
    are service/domain/failures.py's) and, when the gateway words it itself, a message
    for people. Without one the service's own sentence for the code is stored
    (service/commands/charging.py); without a code, the generic decline."""

    outcome: ChargeOutcome
    failure_code: str | None = None
    failure_message: str | None = None

    APPROVED: ClassVar[ChargeDecision]
    PROCESSING: ClassVar[ChargeDecision]
    DECLINED: ClassVar[ChargeDecision]

    @classmethod
    def declined(cls, code: str | None = None, message: str | None = None) -> ChargeDecision:
        return cls(ChargeOutcome.DECLINED, code, message)


ChargeDecision.APPROVED = ChargeDecision(ChargeOutcome.APPROVED)
ChargeDecision.PROCESSING = ChargeDecision(ChargeOutcome.PROCESSING)
# A decline without a reason of its own.
ChargeDecision.DECLINED = ChargeDecision(ChargeOutcome.DECLINED)


@runtime_checkable
class PaymentGateway(Protocol):
    async def charge(self, request: ChargeRequest) -> ChargeDecision:
        """Ask the gateway to take the payment."""
        ...

    async def charge_status(self, request: ChargeRequest) -> ChargeDecision:
        """Ask what became of an earlier charge attempt (the reconciler's question)."""
        ...
