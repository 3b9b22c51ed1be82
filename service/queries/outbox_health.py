"""The outbox's backlog (view `outbox_backlog`), for readiness and the metrics gauges."""

from __future__ import annotations

import msgspec

from service.db.database import Database
from service.db.rows import row_as
from service.metrics import OUTBOX_BLOCKED, OUTBOX_DEAD, OUTBOX_OLDEST_AGE, OUTBOX_PENDING


class OutboxBacklog(msgspec.Struct, frozen=True):
    pending: int
    oldest_age_seconds: float
    dead: int
    blocked: int


async def outbox_backlog(db: Database) -> OutboxBacklog:
    """Read the backlog and publish it as gauges (readiness and each metrics scrape)."""
    backlog = row_as(await db.queries.outbox_lag(db.pool), OutboxBacklog)
    OUTBOX_PENDING.set(backlog.pending)
    OUTBOX_OLDEST_AGE.set(backlog.oldest_age_seconds)
    OUTBOX_DEAD.set(backlog.dead)
    OUTBOX_BLOCKED.set(backlog.blocked)
    return backlog
