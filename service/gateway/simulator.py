"""The built-in gateway: approves everything except the configured decline rule."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from service.gateway.base import GatewayDecision
from service.settings import GatewaySettings


class SimulatedGateway:
    """Deterministic stand-in for a card processor.

    In "sync" mode `charge` decides at once. In "async" mode it answers PENDING
    and the decision arrives later as a signed callback; asked for the status
    (by the reconciler, when no callback came), it gives the decision it made.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        self._asynchronous = settings.mode == "async"
        self._declined_amounts = frozenset(Decimal(a) for a in settings.decline_amounts)

    def _decide(self, amount: Decimal) -> GatewayDecision:
        if amount in self._declined_amounts:
            return GatewayDecision.DECLINED
        return GatewayDecision.APPROVED

    async def charge(self, transaction_id: UUID, order_id: int, amount: Decimal) -> GatewayDecision:
        if self._asynchronous:
            return GatewayDecision.PENDING
        return self._decide(amount)

    async def status(self, transaction_id: UUID, order_id: int, amount: Decimal) -> GatewayDecision:
        return self._decide(amount)
