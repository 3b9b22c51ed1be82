"""The payment gateway adapter: an interface, the built-in simulator, and the limits
(time, calls in flight) every adapter runs under."""

from service.gateway.base import GatewayDecision, GatewayOutcome, PaymentGateway
from service.gateway.limits import LimitedGateway
from service.gateway.simulator import SimulatedGateway

__all__ = [
    "GatewayDecision",
    "GatewayOutcome",
    "LimitedGateway",
    "PaymentGateway",
    "SimulatedGateway",
]
