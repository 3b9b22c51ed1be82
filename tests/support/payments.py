"""Payments made through the service's own statements, for tests that need them in place."""

from __future__ import annotations

import json
from decimal import Decimal
from uuid import UUID

import asyncpg

from service.db.sql import load_queries
from service.domain.rules import RETRY_SOURCES, UNDECIDED, PaymentStatus, sources_of


async def insert_processing(
    conn: asyncpg.Connection,
    order_id: int,
    amount: Decimal = Decimal(1000),
    payment_method_token: str | None = None,
) -> asyncpg.Record:
    """A PROCESSING payment, as a create alone in its group commit inserts it."""
    payment = {"order_id": order_id, "amount": str(amount), "currency": "JPY"}
    if payment_method_token is not None:
        payment["payment_method_token"] = payment_method_token
    rows = load_queries().insert_processing_many(conn, items=json.dumps([{"payment": payment}]))
    [row] = [row async for row in rows]
    return row


async def start_retry(conn: asyncpg.Connection, payment_id: int) -> asyncpg.Record | None:
    """A retry's first step, as a retry without an Idempotency-Key takes it."""
    return await load_queries().start_retry(
        conn,
        payment_id=payment_id,
        from_statuses=RETRY_SOURCES,
        payment_method_token=None,
        **dict.fromkeys(("key_caller", "key_endpoint", "key_name", "key_token")),
    )


async def settle(
    conn: asyncpg.Connection,
    payment_id: int,
    transaction_id: UUID,
    status: PaymentStatus,
    request_id: str | None = None,
    failure_code: str | None = None,
    next_action: dict[str, str] | None = None,
) -> asyncpg.Record | None:
    """The service's settle statement for one payment: its row, or None when it did not
    apply (the payment had moved on, or `transaction_id` is not its latest attempt's)."""
    rows = load_queries().settle_payments(
        conn,
        payment_ids=[payment_id],
        transaction_ids=[transaction_id],
        statuses=[status.value],
        gateway_references=[None],
        next_actions=[None if next_action is None else json.dumps(next_action)],
        failure_codes=[failure_code],
        failure_messages=[None if failure_code is None else "declined for the test"],
        request_ids=[request_id],
        from_statuses=UNDECIDED,
    )
    settled = [row async for row in rows]
    return settled[0] if settled else None


async def start_refund(
    conn: asyncpg.Connection, payment_id: int, request_id: str | None = None
) -> int:
    """A full refund of a COMPLETED payment committed PENDING, as before the gateway is
    asked (the service's first statement of a refund); its id."""
    started = await load_queries().start_refund(
        conn,
        payment_id=payment_id,
        from_statuses=sources_of(PaymentStatus.REFUNDED),
        amount=None,
        reason="refunded for the test",
        request_id=request_id,
    )
    assert started is not None, "the payment could not be refunded"
    refund_id: int = started["id"]
    return refund_id


async def refund(conn: asyncpg.Connection, payment_id: int, request_id: str | None = None) -> int:
    """A full refund of a COMPLETED payment the gateway made at once, through the service's
    two statements (the refund PENDING, then COMPLETED with the payment REFUNDED); its id."""
    refund_id = await start_refund(conn, payment_id, request_id)
    settled = load_queries().settle_refunds(
        conn,
        refund_ids=[refund_id],
        statuses=["COMPLETED"],
        gateway_references=[None],
        failure_codes=[None],
        failure_messages=[None],
        from_statuses=sources_of(PaymentStatus.REFUNDED),
    )
    assert [row async for row in settled], "the refund was not settled"
    return refund_id


async def find_payment(conn: asyncpg.Connection, payment_id: int) -> asyncpg.Record:
    """The payment's row as the write side sees it."""
    [row] = [row async for row in load_queries().find_payments(conn, payment_ids=[payment_id])]
    return row


async def payment_in(
    conn: asyncpg.Connection, order_id: int, status: PaymentStatus, amount: Decimal = Decimal(1000)
) -> int:
    """The id of a payment of this order that reached `status` through the state
    machine's legal moves, made by the service's own statements."""
    created = await insert_processing(conn, order_id, amount)
    payment_id = created["id"]
    settled = PaymentStatus.COMPLETED if status is PaymentStatus.REFUNDED else status
    if settled not in (PaymentStatus.PROCESSING, PaymentStatus.PENDING):
        failed = settled is PaymentStatus.FAILED
        await settle(
            conn,
            payment_id,
            created["transaction_id"],
            settled,
            failure_code="card_declined" if failed else None,
        )
    if status is PaymentStatus.PENDING:
        await settle(conn, payment_id, created["transaction_id"], status)
    if status is PaymentStatus.REFUNDED:
        await refund(conn, payment_id)
    return payment_id
