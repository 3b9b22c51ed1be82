"""Where the read side's queries run: a streaming replica while it keeps up, else the primary.

Query handlers take a `Reader` and hand it the query to run; it picks the pool. The
replica serves while the probe (service/db/replica_probe.py) last found it current
within `[database] read_max_lag_seconds`; otherwise, and when none is configured,
the primary does. Nothing a replica does turns into an error for the client:

- a row it does not have (a payment created a moment ago, not replayed yet), or
  one it has in a state the caller may already have moved past (`settled` says
  no), is read again from the primary: a client never sees its own new payment
  missing or still processing; so is a page of the payments list that continues
  after a payment the replica does not list yet;
- a failed round trip (the replica stopped, a connection cut mid-query, a query
  cancelled by a recovery conflict) is retried on the primary, and the replica
  is skipped until the probe finds it well again.

A list is not read again for being empty or short: that is a valid answer. A list from
the replica is stale by at most the lag bound (plus one probe interval).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import asyncpg

from service.db.errors import DATABASE_ERRORS
from service.db.queries import Queries, Row
from service.metrics import READS, REPLICA_FALLBACKS

# "off": none configured; "starting": not probed yet; "ok": serving reads;
# "lagging", "unreachable", "not-a-standby" (promoted, or not a replica at all): skipped.
ReplicaState = Literal["off", "starting", "ok", "lagging", "unreachable", "not-a-standby"]

T = TypeVar("T")
FetchMany = Callable[[Queries, asyncpg.Pool], AsyncIterator[Row]]


def _always_settled(found: object) -> bool:
    return True


@dataclass(slots=True)
class ReplicaStatus:
    """What the last probe found; readiness reports it as is."""

    state: ReplicaState = "off"
    lag_seconds: float | None = None  # known current as of this long ago (None: unknown)


@dataclass(slots=True)
class Reader:
    """The read side's connection pools: the primary's, and the replica's when configured."""

    primary: asyncpg.Pool
    queries: Queries
    replica: asyncpg.Pool | None = None
    status: ReplicaStatus = field(default_factory=ReplicaStatus)

    @property
    def source(self) -> Literal["primary", "replica"]:
        """Where reads go now."""
        return "replica" if self.replica is not None and self.status.state == "ok" else "primary"

    async def one(
        self,
        fetch: Callable[[Queries, asyncpg.Pool], Awaitable[T | None]],
        settled: Callable[[T], bool] = _always_settled,
    ) -> T | None:
        """One answer (a row, or what a few statements make of theirs), or None: from the
        replica unless it has none, has one not `settled` yet, or fails."""
        if self.replica is not None and self.source == "replica":
            try:
                row = await fetch(self.queries, self.replica)
            except DATABASE_ERRORS:
                self._replica_failed()
            else:
                if row is not None and settled(row):
                    READS.labels("replica").inc()
                    return row
                REPLICA_FALLBACKS.labels("not-there-yet").inc()
        READS.labels("primary").inc()
        return await fetch(self.queries, self.primary)

    async def many(self, fetch: FetchMany) -> list[Row]:
        """Every row of a query, from the replica unless it fails (then from the primary)."""
        if self.replica is not None and self.source == "replica":
            try:
                rows = [row async for row in fetch(self.queries, self.replica)]
            except DATABASE_ERRORS:
                self._replica_failed()
            else:
                READS.labels("replica").inc()
                return rows
        READS.labels("primary").inc()
        return [row async for row in fetch(self.queries, self.primary)]

    def _replica_failed(self) -> None:
        # Skip it at once, not one failed read per request until the next probe.
        REPLICA_FALLBACKS.labels("failed").inc()
        self.status.state = "unreachable"
