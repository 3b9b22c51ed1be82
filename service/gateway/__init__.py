"""The payment gateway adapter: an interface, the built-in simulator, and the limits
(time, calls in flight) every adapter runs under. The contract of a gateway that moves
real money (service/gateway/contract.py) and its Stripe module (service/gateway/stripe.py,
imported where configured) sit beside them."""

from service.gateway.base import GatewayDecision, GatewayOutcome, PaymentGateway
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
    "GatewayDecision",
    "GatewayEvent",
    "GatewayOutcome",
    "GatewayUnavailable",
    "LimitedGateway",
    "MalformedEvent",
    "NextAction",
    "PaymentGateway",
    "RefundDecision",
    "RefundOutcome",
    "RefundRequest",
    "SimulatedGateway",
]
