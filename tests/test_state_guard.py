"""The database guards the state machine: operators work in psql, and a hand-typed
status change or refund row must not store what the service never would.

The legal moves live once, in service/domain/rules.py; the database's table of them
(migrations/0010) must say exactly the same. Every payment here reaches its status
through legal moves made by the service's own statements (tests/support/payments.py).
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from service.domain.rules import TRANSITIONS, PaymentStatus
from tests.support.payments import payment_in
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()
ORDER_IDS = itertools.count(1)


async def test_the_database_allows_exactly_the_domain_s_transitions(
    db: asyncpg.Connection,
) -> None:
    stored = {
        (row["from_status"], row["to_status"]) async for row in checks.payment_transitions(db)
    }
    domain = {
        (before.value, after.value) for before, afters in TRANSITIONS.items() for after in afters
    }
    assert stored == domain


async def refund_by_hand(db: asyncpg.Connection, payment_id: int) -> None:
    """A full refund as an operator would type it: both rows in one transaction."""
    async with db.transaction():
        await checks.insert_refund_row(
            db, payment_id=payment_id, amount=Decimal(1000), reason="by hand"
        )
        await checks.hand_typed_status_change(db, payment_id=payment_id, status="REFUNDED")


@pytest.mark.parametrize("before", list(PaymentStatus), ids=str)
async def test_a_hand_typed_status_change_is_refused_unless_legal(
    db: asyncpg.Connection, before: PaymentStatus
) -> None:
    payment_id = await payment_in(db, next(ORDER_IDS), before)
    for after in set(PaymentStatus) - TRANSITIONS[before] - {before}:
        message = f"payment {payment_id} cannot move from {before} to {after}"
        with pytest.raises(asyncpg.CheckViolationError, match=message):
            await checks.hand_typed_status_change(db, payment_id=payment_id, status=after.value)
        assert await checks.payment_status(db, payment_id=payment_id) == before

    # The legal moves pass, each from a payment of its own.
    for after in TRANSITIONS[before]:
        payment_id = await payment_in(db, next(ORDER_IDS), before)
        if after is PaymentStatus.REFUNDED:
            await refund_by_hand(db, payment_id)
        else:
            await checks.hand_typed_status_change(db, payment_id=payment_id, status=after.value)
        assert await checks.payment_status(db, payment_id=payment_id) == after


@pytest.mark.parametrize("status", [PaymentStatus.PROCESSING, PaymentStatus.COMPLETED])
async def test_a_refund_row_whose_payment_is_not_being_refunded_is_refused(
    db: asyncpg.Connection, status: PaymentStatus
) -> None:
    payment_id = await payment_in(db, 1, status)

    with pytest.raises(asyncpg.CheckViolationError, match="without its move to REFUNDED"):
        await checks.insert_refund_row(
            db, payment_id=payment_id, amount=Decimal(1000), reason="by hand"
        )

    assert await checks.count_refunds_of_payment(db, payment_id=payment_id) == 0
    assert await checks.payment_status(db, payment_id=payment_id) == status


async def test_refunding_by_hand_takes_the_refund_row_in_the_same_transaction(
    db: asyncpg.Connection,
) -> None:
    """Checked at commit, so the order of the two statements does not matter."""
    alone, first, second = [await payment_in(db, n, PaymentStatus.COMPLETED) for n in (1, 2, 3)]

    with pytest.raises(asyncpg.CheckViolationError, match="REFUNDED without a completed refund"):
        await checks.hand_typed_status_change(db, payment_id=alone, status="REFUNDED")
    await refund_by_hand(db, first)
    async with db.transaction():
        await checks.hand_typed_status_change(db, payment_id=second, status="REFUNDED")
        await checks.insert_refund_row(db, payment_id=second, amount=Decimal(1000), reason="r")

    statuses = [await checks.payment_status(db, payment_id=p) for p in (alone, first, second)]
    assert statuses == ["COMPLETED", "REFUNDED", "REFUNDED"]
