"""Amounts, statuses and the transitions between them."""

from __future__ import annotations

import math
from decimal import Decimal
from enum import StrEnum

from service.domain.errors import (
    InvalidPayment,
    InvalidRefund,
    NotRefundable,
    NotRetryable,
    RefundAmountMismatch,
    TransitionNotAllowed,
)

MIN_AMOUNT = Decimal(100)
MAX_AMOUNT = Decimal(1_000_000)
CURRENCY = "JPY"
MAX_ORDER_ID = 2**63 - 1  # PostgreSQL bigint


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"


# The legal moves of the state machine. Refunds come only from COMPLETED; a gateway may
# only settle what it has not decided yet (PROCESSING, or PENDING: waiting for the buyer
# to authenticate, service/gateway/contract.py REQUIRES_ACTION); a FAILED payment goes
# back to PROCESSING when it is retried (a new charge attempt, under a new transaction_id).
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.PENDING: frozenset(
        {PaymentStatus.PROCESSING, PaymentStatus.COMPLETED, PaymentStatus.FAILED}
    ),
    PaymentStatus.PROCESSING: frozenset(
        {PaymentStatus.PENDING, PaymentStatus.COMPLETED, PaymentStatus.FAILED}
    ),
    PaymentStatus.COMPLETED: frozenset({PaymentStatus.REFUNDED}),
    PaymentStatus.FAILED: frozenset({PaymentStatus.PROCESSING}),
    PaymentStatus.REFUNDED: frozenset(),
}


def can_transition(current: PaymentStatus, new: PaymentStatus) -> bool:
    return new in TRANSITIONS[current]


def sources_of(new: PaymentStatus) -> list[str]:
    """The statuses a payment may move to `new` from: the SQL's compare-and-set
    (`status = ANY(:from_statuses)`) asks for exactly these."""
    return [current.value for current, targets in TRANSITIONS.items() if new in targets]


# What a retry may start from: FAILED only. PENDING also moves to PROCESSING, but that
# is the gateway's word on the same attempt (the buyer authenticated), not a retry.
RETRY_SOURCES = [PaymentStatus.FAILED.value]
# What the gateway has not decided yet: the only statuses its word (an answer, an event,
# the reconciler's question) moves a payment from.
UNDECIDED = [PaymentStatus.PROCESSING.value, PaymentStatus.PENDING.value]


def retry_refusal(status: PaymentStatus) -> NotRetryable:
    """Why a retry of this payment is refused (called once the retry did not apply)."""
    if status is PaymentStatus.FAILED:
        # It was FAILED when re-read: a concurrent retry took it and has ended meanwhile.
        return NotRetryable(
            "the payment was being retried by another request; retry again if it failed",
            payment_status=str(status),
        )
    return NotRetryable(
        f"only FAILED payments can be retried; this one is {status}", payment_status=str(status)
    )


def payment_amount(amount: int | float | Decimal, currency: str = CURRENCY) -> Decimal:
    """The exact amount of a new payment, or InvalidPayment saying which rule it breaks.

    JPY has no minor unit: 100 and 100.0 are the same whole amount, 100.5 is refused.
    """
    if currency != CURRENCY:
        raise InvalidPayment(f"currency must be {CURRENCY}, not {currency!r}")
    if isinstance(amount, bool) or not isinstance(amount, int | float | Decimal):
        raise InvalidPayment("amount must be a JSON number")
    if isinstance(amount, float | Decimal) and not math.isfinite(amount):
        raise InvalidPayment("amount must be a finite number")
    exact = Decimal(amount)
    if exact != exact.to_integral_value():
        raise InvalidPayment(f"amount must be a whole number of yen, not {amount}")
    if not MIN_AMOUNT <= exact <= MAX_AMOUNT:
        raise InvalidPayment(
            f"amount must be between {MIN_AMOUNT} and {MAX_AMOUNT:,} JPY per transaction, "
            f"not {amount}"
        )
    return exact.quantize(Decimal(1))


def gateway_outcome_applies(current: PaymentStatus, reported: PaymentStatus) -> bool:
    """Whether a gateway-reported status changes the payment.

    The status it already has is a no-op (False), and so is COMPLETED for a payment
    refunded since: the gateway reports the charge, which a refund leaves COMPLETED,
    and a report the payment went past is no conflict (409 would have the gateway
    retry it for days). A legal settlement applies (True); anything else is
    TransitionNotAllowed.
    """
    if reported == current:
        return False
    if current is PaymentStatus.REFUNDED and reported is PaymentStatus.COMPLETED:
        return False
    if current in UNDECIDED and can_transition(current, reported):
        return True
    raise TransitionNotAllowed(
        f"payment is {current}; the gateway cannot move it to {reported}",
        current_status=str(current),
        requested_status=str(reported),
    )


def superseded_attempt_applies(attempt_status: PaymentStatus, reported: PaymentStatus) -> bool:
    """Whether a gateway report about an attempt a retry superseded changes the payment: never.

    The same outcome the attempt ended with is a no-op (False), as for a current one;
    another outcome is TransitionNotAllowed (409): that attempt's outcome is final, and
    the payment belongs to its newer attempt.
    """
    if reported == attempt_status:
        return False
    raise TransitionNotAllowed(
        f"the transaction is an earlier attempt of this payment, which ended {attempt_status} "
        "and was superseded by a retry; the gateway cannot move it to "
        f"{reported}",
        current_status=str(attempt_status),
        requested_status=str(reported),
    )


def refund_refusal(
    status: PaymentStatus,
    payment_amount: Decimal,
    requested: Decimal | None,
    refund_in_progress: int | None = None,
) -> Exception:
    """Why a refund of this payment is refused (called once the refund did not apply):
    `refund_in_progress` names its refund still PENDING, if it has one."""
    if refund_in_progress is not None:
        return NotRefundable(
            f"refund {refund_in_progress} of this payment is in progress (PENDING): its "
            "outcome comes from the gateway",
            payment_status=str(status),
            refund_id=refund_in_progress,
        )
    if status is not PaymentStatus.COMPLETED:
        already = " (already refunded)" if status is PaymentStatus.REFUNDED else ""
        return NotRefundable(
            f"only COMPLETED payments can be refunded; this one is {status}{already}",
            payment_status=str(status),
        )
    if requested is not None and requested != payment_amount:
        return RefundAmountMismatch(
            f"full refunds only: amount must be {payment_amount}, not {requested}",
        )
    # The payment was COMPLETED when re-read: a concurrent change raced us.
    return NotRefundable("the payment changed while it was being refunded; retry")


MAX_REASON_LENGTH = 500


def refund_reason(reason: str) -> str:
    """A refund's reason: required, at most 500 characters, storable as text."""
    stripped = reason.strip()
    if not stripped:
        raise InvalidRefund("reason must not be empty")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidRefund(f"reason must be at most {MAX_REASON_LENGTH} characters")
    if "\x00" in reason:
        raise InvalidRefund("reason must not contain NUL characters")
    return reason


def refund_amount(amount: int | float | Decimal | None) -> Decimal | None:
    """The amount a refund request names, exactly (None: the full payment amount)."""
    if amount is None:
        return None
    # Decimal's own test: math.isfinite would call 1E+400 infinite, as a float is.
    exact = Decimal(amount)
    if not exact.is_finite():
        raise RefundAmountMismatch("amount must be a finite number")
    return exact


def could_be_a_payment_amount(amount: Decimal) -> bool:
    """Whether some payment could have this amount: a whole number of yen within the
    limits (payment_amount). Any other amount equals no payment's, so a refund naming it
    is refused without asking the database, which could not even hold some of them
    (numeric takes no exponent below -16383: `1e-20000`)."""
    return amount == amount.to_integral_value() and MIN_AMOUNT <= amount <= MAX_AMOUNT
