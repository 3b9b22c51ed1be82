"""The payment gateway adapter: an interface and the built-in simulator."""

from service.gateway.base import GatewayDecision, PaymentGateway
from service.gateway.simulator import SimulatedGateway

__all__ = ["GatewayDecision", "PaymentGateway", "SimulatedGateway"]
