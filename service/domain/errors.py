"""Domain errors. The API maps each class to one problem+json type (service/api/problems.py)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request the business rules refuse. `detail` is safe to show to the caller."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidPayment(DomainError):
    """Amount out of range, not whole yen, or a currency other than JPY."""


class DuplicateOrder(DomainError):
    """The order already has a payment (any status): one payment per order."""


class PaymentDeclined(DomainError):
    """The gateway declined; the payment is stored FAILED."""


class NotRetryable(DomainError):
    """Only a FAILED payment can be retried (and only by one retry at a time)."""


class PaymentNotFound(DomainError):
    """No payment with that id, order or transaction id."""


class NotRefundable(DomainError):
    """Only a COMPLETED payment can be refunded, and only once."""


class RefundAmountMismatch(DomainError):
    """Full refunds only: a given amount must equal the payment's."""


class TransitionNotAllowed(DomainError):
    """A gateway callback asks for a status change the state machine forbids."""


class InvalidRefund(DomainError):
    """A refund request the rules refuse before looking at the payment (e.g. its reason)."""


class GatewayUnavailable(DomainError):
    """The gateway did not answer; the payment stays PROCESSING (a refund PENDING) until
    reconciled."""


class RefundFailed(DomainError):
    """The gateway refused the refund; it is stored FAILED and the payment stays COMPLETED."""
