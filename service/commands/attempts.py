"""Attempts of a request its client may retry (an API call with an Idempotency-Key).

A create whose PROCESSING rows committed and which then failed (the gateway did not
answer, the database went away, the process died) has made payments: a retry of it must
answer with those payments as they now stand, never with "duplicate order" for the
orders it paid itself. The handlers pass the attempt's claim to the statement that
creates the payments, which records them on the key as it commits them, and ask the
attempt which ones earlier attempts created.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from service.db.session import ClaimedKey
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import PaymentDeclined
from service.domain.model import Payment
from service.domain.rules import PaymentStatus


class Attempt(Protocol):
    """One attempt of a retryable request; the API's idempotency layer implements it."""

    @property
    def earlier_payment_ids(self) -> Collection[int]:
        """The payments earlier attempts of the same request created (none on a first)."""
        ...

    @property
    def claimed_key(self) -> ClaimedKey:
        """The key this attempt holds: payments created under it are recorded on it."""
        ...


def claimed_key(attempt: Attempt | None) -> ClaimedKey | None:
    return None if attempt is None else attempt.claimed_key


async def earlier_payments(uow: UnitOfWork, attempt: Attempt | None) -> dict[int, Payment]:
    """The payments earlier attempts of this request created, by order id, as they stand."""
    if attempt is None or not attempt.earlier_payment_ids:
        return {}
    async with uow.connection() as session:
        payments = await session.find_payments(sorted(attempt.earlier_payment_ids))
    return {payment.order_id: payment for payment in payments}


def declined(payment: Payment) -> PaymentDeclined | None:
    """The 402 a create (or a retry) answers for this payment, if the gateway declined
    it: the problem names the payment and why it failed."""
    if payment.status != PaymentStatus.FAILED:
        return None
    return PaymentDeclined(
        "the payment gateway declined the payment",
        payment_id=payment.id,
        failure_code=payment.failure_code,
        failure_message=payment.failure_message,
    )


def answer(payment: Payment) -> Payment:
    """The payment a create or a retry answers with (201), or its 402 when FAILED."""
    error = declined(payment)
    if error is not None:
        raise error
    return payment
