"""CreatePayments: the design's sequence (section 4) for many orders, one statement per step.

Each item is still its own payment, exactly as a single create makes it: the same rules,
the same 1:1 order check (the UNIQUE constraint), the same two commits around the
gateway, the same single-order webhook. Only the round trips are shared.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from service.commands.attempts import Attempt, claimed_key, declined, earlier_payments
from service.commands.messages import CreatePayments
from service.commands.settlement import gateway_unavailable, log_outcome, settlement_of
from service.db.session import NewPayment, Settlement
from service.db.unit_of_work import UnitOfWork
from service.domain.errors import DomainError, DuplicateOrder, InvalidPayment
from service.domain.model import Payment
from service.domain.rules import payment_amount
from service.gateway import GatewayDecision, GatewayOutcome, PaymentGateway
from service.metrics import PAYMENTS

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """How one item ended, as the single create would have: its payment (201), the
    domain error it would have raised, or both (402: the FAILED payment)."""

    payment: Payment | None = None
    error: DomainError | None = None


def _already_paid(order_id: int, note: str = "") -> ItemOutcome:
    detail = f"order {order_id} already has a payment{note}"
    return ItemOutcome(error=DuplicateOrder(detail, order_id=order_id))


async def create_payments(
    command: CreatePayments,
    uow: UnitOfWork,
    gateway: PaymentGateway,
    attempt: Attempt | None = None,
) -> list[ItemOutcome]:
    """Insert every valid item PROCESSING and commit; ask the gateway for each; settle
    every decided item with its outbox row in one statement. One outcome per item, in order.

    As for a single create, the PROCESSING rows are committed before the gateway is
    asked, so a crash in between leaves rows the reconciler settles. A retry (`attempt`)
    of a batch that made payments answers for their items with each payment as it
    stands (201, or 402 once FAILED), as a single create's retry does; its other items
    run again.
    """
    earlier = await earlier_payments(uow, attempt)
    outcomes: dict[int, ItemOutcome] = {}
    firsts: dict[int, int] = {}  # order_id -> index of its first valid item
    amounts: dict[int, Decimal] = {}
    for index, item in enumerate(command.payments):
        try:
            amounts[index] = payment_amount(item.amount, item.currency)
        except InvalidPayment as exc:
            outcomes[index] = ItemOutcome(error=exc)
            continue
        first = firsts.setdefault(item.order_id, index)
        if first != index:
            del amounts[index]
            outcomes[index] = _already_paid(item.order_id, f" (item {first} of this batch)")
        elif item.order_id in earlier:
            del amounts[index]
            payment = earlier[item.order_id]
            outcomes[index] = ItemOutcome(payment=payment, error=declined(payment))
    items = [(index, command.payments[index]) for index in amounts]

    created: list[Payment] = []
    if items:
        async with uow.connection() as session:
            key = claimed_key(attempt)
            created = await session.insert_processing_many(
                [
                    NewPayment(item.order_id, amounts[index], item.currency, key)
                    for index, item in items
                ]
            )
    by_order = {payment.order_id: payment for payment in created}
    for index, item in items:
        if item.order_id not in by_order:
            outcomes[index] = _already_paid(item.order_id)

    ended = await _charge_and_settle(created, uow, gateway, command.request_id)
    for index, item in items:
        if item.order_id in by_order:
            outcomes[index] = ended[by_order[item.order_id].id]
    return [outcomes[index] for index in range(len(command.payments))]


async def _charge_and_settle(
    created: Sequence[Payment], uow: UnitOfWork, gateway: PaymentGateway, request_id: str | None
) -> dict[int, ItemOutcome]:
    """Outcomes by payment id of the PROCESSING payments just committed.

    Every charge starts at once: the gateway's own limits (service/gateway/limits.py)
    bound the calls in flight, and count the wait for a slot towards the time limit.
    """

    async def charge(payment: Payment) -> GatewayDecision:
        return await gateway.charge(payment.transaction_id, payment.order_id, payment.amount)

    answers = await asyncio.gather(*map(charge, created), return_exceptions=True)
    ended: dict[int, ItemOutcome] = {}
    decisions: list[Settlement] = []
    for payment, answer in zip(created, answers, strict=True):
        if isinstance(answer, BaseException):
            ended[payment.id] = ItemOutcome(error=gateway_unavailable(payment, answer))
        elif answer.outcome is GatewayOutcome.PENDING:
            PAYMENTS.labels("processing").inc()
            ended[payment.id] = ItemOutcome(payment=payment)
        else:
            decisions.append(settlement_of(payment, answer, request_id))
    if not decisions:
        return ended

    async with uow.connection() as session:
        settled = await session.settle_many(decisions)
        done = {payment.id for payment in settled}
        # Not settled here: a gateway callback or the reconciler settled it first; report that.
        others = [d.payment_id for d in decisions if d.payment_id not in done]
        current = await session.find_payments(others) if others else []
    for payment in (*settled, *current):
        PAYMENTS.labels(payment.status.lower()).inc()
        log_outcome(payment, log)
        ended[payment.id] = ItemOutcome(payment=payment, error=declined(payment))
    return ended
