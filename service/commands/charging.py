"""Charging: the one pipeline every payment is charged through.

A create (one order), a batch (many orders) and a retry (a FAILED payment, again) are
each a list of charges, and each goes through the design's sequence (section 4):

1. commit PROCESSING: new payments in one INSERT with every create that arrives
   meanwhile (group commit: a single create is a list of one, a batch brings its
   items), or a retry's compare-and-set from FAILED under a new transaction_id. A crash
   after this leaves a PROCESSING payment the reconciler settles, never a charge
   without a record;
2. ask the gateway for every charge at once (its limits, service/gateway/limits.py,
   bound the calls in flight and count the wait toward the time limit);
3. settle what the gateway said, with the order webhooks, in one UPDATE with every
   settlement that arrives meanwhile: COMPLETED or FAILED (with the webhook), or PENDING
   while the buyer authenticates (3-D Secure: the payment carries what the buyer's page
   does next, and its webhook waits for the outcome). A gateway that has not decided
   (PROCESSING) leaves the payment PROCESSING, with the gateway's reference of the
   charge when it gave one, for its event or the reconciler to settle. The
   gateway's events and the reconciler settle through the same step (`settlement_of`,
   then Session.settle_many).

Each charge ends as the single call would answer it (`PaymentResult`): the payment
(201), a domain error (400, 503), or both (402: the FAILED payment).

A request repeated under its Idempotency-Key (its `KeyClaim`) answers for the payments
its earlier tries created as they now stand, without charging them again (the
reconciler settles one left PROCESSING), and never with "duplicate order" for orders it
paid itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple

import msgspec

from service.commands.messages import CreatePayment, CreatePayments, RetryPayment
from service.db.session import Charge, KeyClaim, NewPayment, Settlement
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import (
    DomainError,
    DuplicateOrder,
    GatewayUnavailable,
    InvalidPayment,
    PaymentDeclined,
    PaymentNotFound,
)
from service.domain.failures import GENERIC_DECLINE, failure_message
from service.domain.model import BuyerAction, Payment
from service.domain.rules import PaymentStatus, payment_amount, retry_refusal
from service.gateway import ChargeDecision, ChargeOutcome, ChargeRequest, Gateway
from service.metrics import PAYMENTS
from service.request_context import current_request_id

log = logging.getLogger(__name__)
# Settled at once, up to this many payments are logged a line each (INFO), more as one.
MAX_OUTCOME_LINES = 10

# The payment's status once the gateway has said so.
STATUS_OF = {
    ChargeOutcome.APPROVED: PaymentStatus.COMPLETED,
    ChargeOutcome.DECLINED: PaymentStatus.FAILED,
    ChargeOutcome.REQUIRES_ACTION: PaymentStatus.PENDING,
    ChargeOutcome.PROCESSING: PaymentStatus.PROCESSING,
}


class PaymentResult(NamedTuple):
    """How one charge ended, as its single call answers: the payment (201), the domain
    error it raises, or both (402: the FAILED payment)."""

    payment: Payment | None = None
    error: DomainError | None = None

    def answer(self) -> Payment:
        """The payment a single create or retry answers with, or the error it raises."""
        if self.error is not None:
            raise self.error
        assert self.payment is not None
        return self.payment


async def create_payment(
    command: CreatePayment, uow: UnitOfWork, gateway: Gateway, claim: KeyClaim | None
) -> Payment:
    """Pay one order: a list of one charge, group-committed with its neighbours."""
    [result] = await create_payments(CreatePayments((command,)), uow, gateway, claim)
    return result.answer()


async def create_payments(
    command: CreatePayments, uow: UnitOfWork, gateway: Gateway, claim: KeyClaim | None
) -> list[PaymentResult]:
    """Pay each order of the command as its own payment; one result per item, in order.

    An item that breaks a rule, names an order an earlier item of the command names, or
    an order that already has a payment (any status) ends with its 400, alone.
    """
    earlier = await _earlier_payments(uow, claim)
    results: list[PaymentResult | None] = [None] * len(command.payments)
    first_of_order: dict[int, int] = {}
    new: list[tuple[int, NewPayment]] = []
    for index, item in enumerate(command.payments):
        try:
            amount = payment_amount(item.amount, item.currency)
            if gateway.needs_payment_method and item.payment_method_token is None:
                raise InvalidPayment(
                    "payment_method_token is required: the gateway charges the buyer's "
                    "payment method"
                )
        except InvalidPayment as exc:
            results[index] = PaymentResult(error=exc)
            continue
        first = first_of_order.setdefault(item.order_id, index)
        if first != index:
            results[index] = _duplicate(item.order_id, f" (item {first} of this batch)")
        elif item.order_id in earlier:
            results[index] = _as_it_stands(earlier[item.order_id])
        else:
            checked = msgspec.structs.replace(item, amount=amount)
            new.append((index, NewPayment(checked, claim)))

    created = await uow.insert_processing([payment for _, payment in new]) if new else []
    started: list[tuple[int, Charge]] = []
    for (index, asked), charge in zip(new, created, strict=True):
        if charge is None:
            results[index] = _duplicate(asked.payment.order_id)
        else:
            started.append((index, charge))
    charged = await _charge([charge for _, charge in started], uow, gateway)
    for (index, _), result in zip(started, charged, strict=True):
        results[index] = result
        # Creates only: a retry's charge attempt is not a payment created.
        if result.payment is not None:
            PAYMENTS.labels(result.payment.status.lower()).inc()
    answered = [result for result in results if result is not None]
    assert len(answered) == len(results)  # every item ended one way or another
    return answered


async def retry_payment(
    command: RetryPayment, uow: UnitOfWork, gateway: Gateway, claim: KeyClaim | None
) -> Payment:
    """Charge a FAILED payment again: its next charge attempt, a list of one charge, with
    the buyer's new payment method if the command gives one (else the previous one).

    The first step is a compare-and-set on FAILED, so of two concurrent retries one
    runs and the other is NotRetryable.
    """
    for earlier in (await _earlier_payments(uow, claim)).values():
        if earlier.id == command.payment_id:
            return _as_it_stands(earlier).answer()
    async with uow.connection() as session:
        retried = await session.start_retry(command.payment_id, command.payment_method_token, claim)
        current = await session.find_payment(command.payment_id) if retried is None else None
    if retried is None:
        if current is None:
            raise PaymentNotFound(f"payment {command.payment_id} does not exist")
        raise retry_refusal(current.status)
    fields = {"payment_id": retried.payment.id, "order_id": retried.payment.order_id}
    log.info("payment %s of order %s retried", *fields.values(), extra=fields)
    [result] = await _charge([retried], uow, gateway)
    return result.answer()


def charge_request(charge: Charge) -> ChargeRequest:
    """What the gateway is asked about the payment's latest charge attempt: the payment's
    fields the request has, by name, and the buyer's payment method."""
    payment = charge.payment
    fields = msgspec.structs.asdict(payment)
    fields.update(
        payment_id=payment.id,
        # The gateway takes a plain Decimal: Yen is the API's way of writing one.
        amount=Decimal(payment.amount),
        reference=payment.gateway_reference,
        payment_method_token=charge.payment_method_token,
    )
    return msgspec.convert(fields, ChargeRequest)


def settlement_of(payment: Payment, decision: ChargeDecision, request_id: str | None) -> Settlement:
    """The settlement of the payment's latest charge attempt that the gateway's word asks
    for: a decline with its code (the generic one when the gateway gave none) and the
    gateway's message, or the service's own for that code; what the buyer's page does
    next while PENDING; the gateway's reference always."""
    status = STATUS_OF[decision.outcome]
    settlement = Settlement(
        payment.id,
        payment.transaction_id,
        status,
        request_id,
        gateway_reference=decision.reference,
    )
    if status is PaymentStatus.FAILED:
        code = decision.failure_code or GENERIC_DECLINE
        message = decision.failure_message or failure_message(code)
        return settlement._replace(failure_code=code, failure_message=message)
    if status is PaymentStatus.PENDING and decision.next_action is not None:
        action = msgspec.convert(decision.next_action, BuyerAction, from_attributes=True)
        return settlement._replace(next_action=action)
    return settlement


async def _charge(
    charges: Sequence[Charge], uow: UnitOfWork, gateway: Gateway
) -> list[PaymentResult]:
    """Steps 2 and 3 for payments just committed PROCESSING: one result each, in order.

    No answer is GatewayUnavailable (503): the payment stays PROCESSING, the reconciler
    settles it.
    """
    if not charges:
        return []
    request_id = current_request_id()
    answers = await asyncio.gather(
        *(gateway.charge(charge_request(charge)) for charge in charges),
        return_exceptions=True,
    )
    results: list[PaymentResult] = []
    decided: list[tuple[int, Settlement]] = []
    for charge, answer in zip(charges, answers, strict=True):
        if isinstance(answer, BaseException):
            results.append(PaymentResult(error=_gateway_unavailable(charge.payment, answer)))
        elif answer.outcome is ChargeOutcome.PROCESSING and answer.reference is None:
            # Nothing to write: its event (or the reconciler) settles it.
            results.append(PaymentResult(charge.payment))
        else:
            decided.append((len(results), settlement_of(charge.payment, answer, request_id)))
            results.append(PaymentResult(charge.payment))
    if not decided:
        return results

    settled = await uow.settle([settlement for _, settlement in decided])
    # None: a gateway event or the reconciler settled it first; report that outcome.
    others = [s.payment_id for (_, s), done in zip(decided, settled, strict=True) if done is None]
    current: dict[int, Payment] = {}
    if others:
        async with uow.connection() as session:
            current = {payment.id: payment for payment in await session.find_payments(others)}
    outcomes = []
    for (position, settlement), done in zip(decided, settled, strict=True):
        payment = done or current[settlement.payment_id]
        outcomes.append(payment)
        results[position] = _as_it_stands(payment)
    _log_outcomes(outcomes)
    return results


async def _earlier_payments(uow: UnitOfWork, claim: KeyClaim | None) -> dict[int, Payment]:
    """The payments earlier tries of this request created, by order id, as they stand."""
    if claim is None or not claim.earlier_payment_ids:
        return {}
    async with uow.connection() as session:
        payments = await session.find_payments(sorted(claim.earlier_payment_ids))
    return {payment.order_id: payment for payment in payments}


def _as_it_stands(payment: Payment) -> PaymentResult:
    """The payment as a create or a retry answers with it: 201, or its 402 once FAILED,
    naming the payment and why it failed."""
    if payment.status != PaymentStatus.FAILED:
        return PaymentResult(payment)
    declined = PaymentDeclined(
        "the payment gateway declined the payment",
        payment_id=payment.id,
        failure_code=payment.failure_code,
        failure_message=payment.failure_message,
    )
    return PaymentResult(payment, declined)


def _duplicate(order_id: int, note: str = "") -> PaymentResult:
    detail = f"order {order_id} already has a payment{note}"
    return PaymentResult(error=DuplicateOrder(detail, order_id=order_id))


def _gateway_unavailable(payment: Payment, exc: BaseException) -> GatewayUnavailable:
    log.warning("gateway failed for payment %s: %r", payment.id, exc)
    return GatewayUnavailable(
        "the payment gateway did not answer; the payment stays PROCESSING and will be "
        "settled by reconciliation",
        payment_id=payment.id,
    )


def _log_outcomes(payments: Sequence[Payment]) -> None:
    """A line per payment, but for a batch one line of counts: a JSON line per payment
    was a fifth of a batch's time in the service (every outcome stays in the database:
    ops.order_timeline; per payment at DEBUG)."""
    if len(payments) > MAX_OUTCOME_LINES:
        statuses = Counter(payment.status.value for payment in payments)
        fields = {"payments": len(payments), "statuses": dict(statuses)}
        log.info("%d payments settled: %s", len(payments), dict(statuses), extra=fields)
        if not log.isEnabledFor(logging.DEBUG):
            return
    for payment in payments:
        fields = {"payment_id": payment.id, "order_id": payment.order_id, "status": payment.status}
        level = logging.INFO if len(payments) <= MAX_OUTCOME_LINES else logging.DEBUG
        log.log(level, "payment %s of order %s %s", *fields.values(), extra=fields)
