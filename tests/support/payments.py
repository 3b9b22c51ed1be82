"""Payments made through the service's own statements, for tests that need them in place."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from service.db.sql import load_queries


async def insert_processing(
    conn: asyncpg.Connection, order_id: int, amount: Decimal = Decimal(1000)
) -> asyncpg.Record:
    """A PROCESSING payment, as a create alone in its group commit inserts it."""
    rows = load_queries().insert_processing_many(
        conn, order_ids=[order_id], amounts=[amount], currencies=["JPY"]
    )
    [row] = [row async for row in rows]
    return row
