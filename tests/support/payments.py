"""Payments made through the service's own statements, for tests that need them in place."""

from __future__ import annotations

import json
from decimal import Decimal
from uuid import UUID

import asyncpg

from service.db.sql import load_queries
from service.domain.rules import RETRY_SOURCES, PaymentStatus, sources_of
from tests.support.sql import load_test_queries


async def insert_processing(
    conn: asyncpg.Connection, order_id: int, amount: Decimal = Decimal(1000)
) -> asyncpg.Record:
    """A PROCESSING payment, as a create alone in its group commit inserts it."""
    payment = {"order_id": order_id, "amount": str(amount), "currency": "JPY"}
    rows = load_queries().insert_processing_many(conn, items=json.dumps([{"payment": payment}]))
    [row] = [row async for row in rows]
    return row


async def start_retry(conn: asyncpg.Connection, payment_id: int) -> asyncpg.Record | None:
    """A retry's first step, as a retry without an Idempotency-Key takes it."""
    return await load_queries().start_retry(
        conn,
        payment_id=payment_id,
        from_statuses=RETRY_SOURCES,
        **dict.fromkeys(("key_caller", "key_endpoint", "key_name", "key_token")),
    )


async def settle(
    conn: asyncpg.Connection,
    payment_id: int,
    transaction_id: UUID,
    status: PaymentStatus,
    request_id: str | None = None,
    failure_code: str | None = None,
) -> asyncpg.Record | None:
    """The service's settle statement for one payment: its row, or None when it did not
    apply (the payment had moved on, or `transaction_id` is not its latest attempt's)."""
    rows = load_queries().settle_payments(
        conn,
        payment_ids=[payment_id],
        transaction_ids=[transaction_id],
        statuses=[status.value],
        failure_codes=[failure_code],
        failure_messages=[None if failure_code is None else "declined for the test"],
        request_ids=[request_id],
        from_statuses=sources_of(status),
    )
    settled = [row async for row in rows]
    return settled[0] if settled else None


async def find_payment(conn: asyncpg.Connection, payment_id: int) -> asyncpg.Record:
    """The payment's row as the write side sees it."""
    [row] = [row async for row in load_queries().find_payments(conn, payment_ids=[payment_id])]
    return row


async def payment_in(
    conn: asyncpg.Connection, order_id: int, status: PaymentStatus, amount: Decimal = Decimal(1000)
) -> int:
    """The id of a payment of this order that reached `status` through the state
    machine's legal moves, made by the service's own statements (PENDING, which the
    service never creates, is inserted so)."""
    if status is PaymentStatus.PENDING:
        payment_id: int = await load_test_queries().insert_payment_row(
            conn, order_id=order_id, amount=amount, currency="JPY", status=status.value
        )
        return payment_id
    queries = load_queries()
    created = await insert_processing(conn, order_id, amount)
    payment_id = created["id"]
    settled = PaymentStatus.COMPLETED if status is PaymentStatus.REFUNDED else status
    if settled is not PaymentStatus.PROCESSING:
        failed = settled is PaymentStatus.FAILED
        await settle(
            conn,
            payment_id,
            created["transaction_id"],
            settled,
            failure_code="card_declined" if failed else None,
        )
    if status is PaymentStatus.REFUNDED:
        await queries.refund_payment(
            conn,
            payment_id=payment_id,
            from_statuses=sources_of(status),
            amount=None,
            reason="refunded for the test",
            request_id=None,
        )
    return payment_id
