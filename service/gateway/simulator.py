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
    An amount of `decline_codes` is declined with its code, one of `decline_amounts`
    without one (the service stores the generic decline, card_declined). The decision
    depends on the amount alone, so a retry of a declined payment is declined again
    until the rule changes (a restart with other settings: the customer fixed their card).
    """

    def __init__(self, settings: GatewaySettings) -> None:
        self._asynchronous = settings.mode == "async"
        declined = map(Decimal, settings.decline_amounts)
        self._declines = dict.fromkeys(declined, GatewayDecision.DECLINED)
        self._declines.update(
            (Decimal(amount), GatewayDecision.declined(code))
            for amount, code in settings.decline_codes.items()
        )

    def _decide(self, amount: Decimal) -> GatewayDecision:
        return self._declines.get(amount, GatewayDecision.APPROVED)

    async def charge(self, transaction_id: UUID, order_id: int, amount: Decimal) -> GatewayDecision:
        if self._asynchronous:
            return GatewayDecision.PENDING
        return self._decide(amount)

    async def status(self, transaction_id: UUID, order_id: int, amount: Decimal) -> GatewayDecision:
        return self._decide(amount)
