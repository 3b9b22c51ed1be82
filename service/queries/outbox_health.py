"""The outbox's backlog, for readiness and the metrics gauges."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from service.db.sql import load_queries
from service.metrics import OUTBOX_DEAD, OUTBOX_OLDEST_AGE, OUTBOX_PENDING


class OutboxBacklog(msgspec.Struct, frozen=True):
    pending: int
    oldest_age_seconds: float
    dead: int


async def outbox_backlog(pool: asyncpg.Pool) -> OutboxBacklog:
    """Read the backlog and publish it as gauges (every reader keeps them fresh)."""
    sql: Any = load_queries()
    row = await sql.outbox_lag(pool)
    backlog = OutboxBacklog(
        pending=row["pending"], oldest_age_seconds=row["oldest_age_seconds"], dead=row["dead"]
    )
    OUTBOX_PENDING.set(backlog.pending)
    OUTBOX_OLDEST_AGE.set(backlog.oldest_age_seconds)
    OUTBOX_DEAD.set(backlog.dead)
    return backlog
