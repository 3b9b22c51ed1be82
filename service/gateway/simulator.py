"""The built-in gateway: approves everything except the configured decline rule."""

from __future__ import annotations

from decimal import Decimal

from service.gateway.base import ChargeDecision, ChargeRequest
from service.settings import GatewaySettings


class SimulatedGateway:
    """Deterministic stand-in for a card processor.

    In "sync" mode `charge` decides at once. In "async" mode it answers PROCESSING
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
        self._declines = dict.fromkeys(declined, ChargeDecision.DECLINED)
        self._declines.update(
            (Decimal(amount), ChargeDecision.declined(code))
            for amount, code in settings.decline_codes.items()
        )

    def _decide(self, amount: Decimal) -> ChargeDecision:
        return self._declines.get(amount, ChargeDecision.APPROVED)

    async def charge(self, request: ChargeRequest) -> ChargeDecision:
        if self._asynchronous:
            return ChargeDecision.PROCESSING
        return self._decide(request.amount)

    async def charge_status(self, request: ChargeRequest) -> ChargeDecision:
        return self._decide(request.amount)
