"""The payment gateway: what the service asks of one (contract.py), the built-in simulator,
the limits (time, calls in flight) every one runs under, and Stripe (stripe.py, imported
where configured, so that the simulator needs no Stripe library loaded)."""

from service.gateway.contract import (
    ChargeDecision,
    ChargeOutcome,
    ChargeRequest,
    Gateway,
    GatewayEvent,
    GatewayUnavailable,
    MalformedEvent,
    NextAction,
    RefundDecision,
    RefundOutcome,
    RefundRequest,
)
from service.gateway.limits import LimitedGateway
from service.gateway.simulator import SimulatedGateway

__all__ = [
    "ChargeDecision",
    "ChargeOutcome",
    "ChargeRequest",
    "Gateway",
    "GatewayEvent",
    "GatewayUnavailable",
    "LimitedGateway",
    "MalformedEvent",
    "NextAction",
    "RefundDecision",
    "RefundOutcome",
    "RefundRequest",
    "SimulatedGateway",
]
