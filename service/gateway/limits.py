"""The limits every gateway call runs under, whatever the adapter."""

from __future__ import annotations

import asyncio

from service.gateway.base import ChargeDecision, ChargeRequest, PaymentGateway

# Gateway calls in flight at once per process (a batch of 1,000 must not open 1,000).
MAX_CALLS_IN_FLIGHT = 64


class LimitedGateway:
    """An adapter whose every call ends, answered or not, within `timeout_seconds`.

    The wait for a free call slot counts towards the limit: a charge then ends within
    the limit of its PROCESSING commit, however many calls queue before it, which is
    what lets the reconciler (whose age exceeds the limit, see GatewaySettings) know
    that no charge of a payment it asks about is still in flight. A call cut off
    raises TimeoutError: to the caller, the gateway did not answer.
    """

    def __init__(self, gateway: PaymentGateway, timeout_seconds: float) -> None:
        self._gateway = gateway
        self._timeout = timeout_seconds
        self._slots = asyncio.Semaphore(MAX_CALLS_IN_FLIGHT)

    async def charge(self, request: ChargeRequest) -> ChargeDecision:
        async with asyncio.timeout(self._timeout), self._slots:
            return await self._gateway.charge(request)

    async def charge_status(self, request: ChargeRequest) -> ChargeDecision:
        async with asyncio.timeout(self._timeout), self._slots:
            return await self._gateway.charge_status(request)
