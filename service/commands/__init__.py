"""Write side: one command, one handler, one transaction."""

from service.commands.messages import (
    ApplyGatewayEvent,
    CreatePayment,
    CreatePayments,
    ReconcileStuckPayments,
    RedeliverEvent,
    RefundPayment,
    ReplayDeadEvents,
    RetryPayment,
    RetryWaitingEvents,
    StartReplayJob,
)

__all__ = [
    "ApplyGatewayEvent",
    "CreatePayment",
    "CreatePayments",
    "ReconcileStuckPayments",
    "RedeliverEvent",
    "RefundPayment",
    "ReplayDeadEvents",
    "RetryPayment",
    "RetryWaitingEvents",
    "StartReplayJob",
]
