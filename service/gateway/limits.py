"""The limits every gateway call runs under, whatever the gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import TypeVar

from service.gateway.contract import (
    ChargeDecision,
    ChargeRequest,
    Gateway,
    GatewayEvent,
    GatewayUnavailable,
    RefundDecision,
    RefundRequest,
)

# Gateway calls in flight at once per process (a batch of 1,000 must not open 1,000).
MAX_CALLS_IN_FLIGHT = 64
T = TypeVar("T")

# The deadline (event loop time) of the gateway call running in this context, set by
# LimitedGateway for the adapter under it: an adapter that refuses early (no turn of its
# rate limit left, a Retry-After past the end) tests against the one deadline the call is
# cut off at, not a later one of its own. None when an adapter is called bare.
call_deadline: ContextVar[float | None] = ContextVar("call_deadline", default=None)


class LimitedGateway:
    """A gateway whose every call ends, answered or not, within `timeout_seconds`.

    The wait for a free call slot counts towards the limit: a charge then ends within
    the limit of its PROCESSING commit, however many calls queue before it, which is
    what lets the reconciler (whose age exceeds the limit, see GatewaySettings) know
    that no charge of a payment it asks about is still in flight. A call cut off
    raises GatewayUnavailable: to the caller, the gateway did not answer.
    """

    def __init__(self, gateway: Gateway, timeout_seconds: float) -> None:
        self._gateway = gateway
        self._timeout = timeout_seconds
        self._slots = asyncio.Semaphore(MAX_CALLS_IN_FLIGHT)
        self.needs_payment_method = gateway.needs_payment_method
        self.ignores_unknown_payments = gateway.ignores_unknown_payments
        self.resend_window_seconds = gateway.resend_window_seconds

    async def _limited(self, call: Callable[[], Awaitable[T]]) -> T:
        deadline = asyncio.get_running_loop().time() + self._timeout
        token = call_deadline.set(deadline)
        try:
            async with asyncio.timeout_at(deadline), self._slots:
                return await call()
        except TimeoutError:
            raise GatewayUnavailable(
                f"no answer within the gateway's time limit of {self._timeout:g} s"
            ) from None
        finally:
            call_deadline.reset(token)

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
