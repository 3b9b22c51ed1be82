"""The payment gateway adapter: an interface, the built-in simulator, and the limits
(time, calls in flight) every adapter runs under."""

from service.gateway.base import ChargeDecision, ChargeOutcome, ChargeRequest, PaymentGateway
from service.gateway.limits import LimitedGateway
from service.gateway.simulator import SimulatedGateway

__all__ = [
    "ChargeDecision",
    "ChargeOutcome",
    "ChargeRequest",
    "LimitedGateway",
    "PaymentGateway",
    "SimulatedGateway",
]
