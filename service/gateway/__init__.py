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
from service.settings import GatewaySettings


def configured_gateway(settings: GatewaySettings) -> LimitedGateway:
    """The gateway `[gateway] kind` names, under the limits every call runs under. Adding
    one (PAY.JP, say) is its module and a line here."""
    gateway: Gateway
    if settings.kind == "stripe":
        from service.gateway.stripe import StripeGateway

        gateway = StripeGateway(
            api_key=settings.stripe_api_key,
            api_base=settings.stripe_api_base,
            timeout_seconds=settings.charge_timeout_seconds,
            max_requests_per_second=settings.max_requests_per_second,
            webhook_secrets=settings.stripe_webhook_secrets,
            tolerance_seconds=settings.callback_tolerance_seconds,
        )
    else:
        gateway = SimulatedGateway(settings)
    return LimitedGateway(gateway, settings.charge_timeout_seconds)


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
    "configured_gateway",
]
