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
  is skipped until the probe finds it well again. Not a data error (DATA_ERRORS):
  that statement fails anywhere, so it is raised as is, and the replica stays in
  use; any caller could otherwise keep it flapping with one bad value.

A list is not read again for being empty or short: that is a valid answer. A list from
the replica is stale by at most the lag bound (plus one probe interval).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias, TypeVar

from service.db.errors import DATA_ERRORS, DATABASE_ERRORS
from service.db.pool import BoundedPool
from service.db.queries import Queries, Row
from service.metrics import READS, REPLICA_FALLBACKS

if TYPE_CHECKING:
    from service.db.queries import Executor

# "off": none configured; "starting": not probed yet; "ok": serving reads;
# "lagging", "unreachable", "not-a-standby" (promoted, or not a replica at all): skipped.
ReplicaState = Literal["off", "starting", "ok", "lagging", "unreachable", "not-a-standby"]

T = TypeVar("T")
# A query of the read side, given the loaded queries and a connection of the pool chosen:
# one answer (a row, or what a few statements make of theirs), or a stream of rows.
FetchOne: TypeAlias = "Callable[[Queries, Executor], Awaitable[T | None]]"
FetchMany: TypeAlias = "Callable[[Queries, Executor], AsyncIterator[Row]]"


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

    primary: BoundedPool
    queries: Queries
    replica: BoundedPool | None = None
    status: ReplicaStatus = field(default_factory=ReplicaStatus)

    @property
    def source(self) -> Literal["primary", "replica"]:
        """Where reads go now."""
        return "replica" if self.replica is not None and self.status.state == "ok" else "primary"

    async def one(
        self,
        fetch: FetchOne[T],
        settled: Callable[[T], bool] = _always_settled,
    ) -> T | None:
        """One answer (a row, or what a few statements make of theirs), or None: from the
        replica unless it has none, has one not `settled` yet, or fails."""
        if self.replica is not None and self.source == "replica":
            try:
                async with self.replica.connection() as connection:
                    row = await fetch(self.queries, connection)
            except DATA_ERRORS:
                raise
            except DATABASE_ERRORS:
                self._replica_failed()
            else:
                if row is not None and settled(row):
                    READS.labels("replica").inc()
                    return row
                REPLICA_FALLBACKS.labels("not-there-yet").inc()
        READS.labels("primary").inc()
        async with self.primary.connection() as connection:
            return await fetch(self.queries, connection)

    async def many(self, fetch: FetchMany) -> list[Row]:
        """Every row of a query, from the replica unless it fails (then from the primary)."""
        if self.replica is not None and self.source == "replica":
            try:
                async with self.replica.connection() as connection:
                    rows = [row async for row in fetch(self.queries, connection)]
            except DATA_ERRORS:
                raise
            except DATABASE_ERRORS:
                self._replica_failed()
            else:
                READS.labels("replica").inc()
                return rows
        READS.labels("primary").inc()
        async with self.primary.connection() as connection:
            return [row async for row in fetch(self.queries, connection)]

    def _replica_failed(self) -> None:
        # Skip it at once, not one failed read per request until the next probe.
        REPLICA_FALLBACKS.labels("failed").inc()
        self.status.state = "unreachable"
