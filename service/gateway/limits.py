"""The limits every gateway call runs under, whatever the gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from service.gateway.contract import (
    ChargeDecision,
    ChargeRequest,
    Gateway,
    GatewayEvent,
    RefundDecision,
    RefundRequest,
)

# Gateway calls in flight at once per process (a batch of 1,000 must not open 1,000).
MAX_CALLS_IN_FLIGHT = 64
T = TypeVar("T")


class LimitedGateway:
    """A gateway whose every call ends, answered or not, within `timeout_seconds`.

    The wait for a free call slot counts towards the limit: a charge then ends within
    the limit of its PROCESSING commit, however many calls queue before it, which is
    what lets the reconciler (whose age exceeds the limit, see GatewaySettings) know
    that no charge of a payment it asks about is still in flight. A call cut off
    raises TimeoutError: to the caller, the gateway did not answer.
    """

    def __init__(self, gateway: Gateway, timeout_seconds: float) -> None:
        self._gateway = gateway
        self._timeout = timeout_seconds
        self._slots = asyncio.Semaphore(MAX_CALLS_IN_FLIGHT)
        self.needs_payment_method = gateway.needs_payment_method

    async def _limited(self, call: Callable[[], Awaitable[T]]) -> T:
        async with asyncio.timeout(self._timeout), self._slots:
            return await call()

    async def charge(self, request: ChargeRequest) -> ChargeDecision:
        return await self._limited(lambda: self._gateway.charge(request))

    async def charge_status(self, request: ChargeRequest) -> ChargeDecision:
        return await self._limited(lambda: self._gateway.charge_status(request))

    async def cancel(self, request: ChargeRequest) -> ChargeDecision:
        return await self._limited(lambda: self._gateway.cancel(request))

    async def refund(self, request: RefundRequest) -> RefundDecision:
        return await self._limited(lambda: self._gateway.refund(request))

    async def refund_status(self, request: RefundRequest) -> RefundDecision:
        return await self._limited(lambda: self._gateway.refund_status(request))

    def parse_event(self, body: bytes, headers: Mapping[str, str]) -> GatewayEvent | None:
        return self._gateway.parse_event(body, headers)

    async def aclose(self) -> None:
        await self._gateway.aclose()
