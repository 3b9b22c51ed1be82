"""Where the read side's queries run: a streaming replica while it keeps up, else the primary.

Query handlers take a `Reader` and hand it what to read of a `ReadSession` (the read
side's statements, typed, on one connection); it picks the pool. The
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

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, TypeVar
from uuid import UUID

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


class ReadSession:
    """The read side's statements (sql/payment_views.sql, sql/events.sql, sql/health.sql,
    the outbox status, sql/console.sql) on one connection of the primary or the replica, typed."""

    def __init__(self, connection: Executor, queries: Queries) -> None:
        self.connection = connection
        self._sql = queries

    async def payment_by_id(self, payment_id: int) -> Row | None:
        return await self._sql.payment_by_id(self.connection, payment_id=payment_id)

    async def payment_by_order(self, order_id: int) -> Row | None:
        return await self._sql.payment_by_order(self.connection, order_id=order_id)

    async def payment_list_cursor(self, payment_id: int) -> Row | None:
        return await self._sql.payment_list_cursor(self.connection, payment_id=payment_id)

    async def list_payments(
        self,
        *,
        status: str | None,
        created_gte: datetime | None,
        created_lt: datetime | None,
        metadata: Mapping[str, str] | None,
        after_xid: int | None,
        after_id: int | None,
        max_rows: int,
    ) -> list[Row]:
        rows = self._sql.list_payments(
            self.connection,
            status=status,
            created_gte=created_gte,
            created_lt=created_lt,
            metadata=metadata,
            after_xid=after_xid,
            after_id=after_id,
            max_rows=max_rows,
        )
        return [row async for row in rows]

    async def list_events(
        self, *, order_id: int | None, starting_after: UUID | None, max_rows: int
    ) -> list[Row]:
        rows = self._sql.list_events(
            self.connection, order_id=order_id, starting_after=starting_after, max_rows=max_rows
        )
        return [row async for row in rows]

    async def find_event_id(self, event_id: UUID) -> Row | None:
        return await self._sql.find_event_id(self.connection, event_id=event_id)

    async def outbox_backlog(self) -> Row:
        return await self._sql.outbox_lag(self.connection)

    async def outbox_status(self) -> Row:
        return await self._sql.outbox_status(self.connection)

    # The operator console (sql/console.sql).

    async def payment_totals(self) -> list[Row]:
        return [row async for row in self._sql.console_payment_totals(self.connection)]

    async def count_waiting_for_buyer(self) -> int:
        return await self._sql.count_waiting_for_buyer(self.connection)

    async def count_manual_review(self) -> int:
        return await self._sql.count_manual_review(self.connection)

    async def manual_review(self, max_rows: int) -> list[Row]:
        rows = self._sql.console_manual_review(self.connection, max_rows=max_rows)
        return [row async for row in rows]

    async def payments_per_minute(self) -> list[Row]:
        return [row async for row in self._sql.console_payments_per_minute(self.connection)]

    async def delivery_lag_per_minute(self) -> list[Row]:
        rows = self._sql.console_delivery_lag_per_minute(self.connection)
        return [row async for row in rows]

    async def stuck_events(self, max_rows: int) -> list[Row]:
        rows = self._sql.console_stuck_events(self.connection, max_rows=max_rows)
        return [row async for row in rows]

    async def replay_jobs(self, max_rows: int, job_id: int | None = None) -> list[Row]:
        rows = self._sql.console_replay_jobs(self.connection, job_id=job_id, max_rows=max_rows)
        return [row async for row in rows]

    async def replay_job(self, job_id: int) -> Row | None:
        found = await self.replay_jobs(1, job_id)
        return found[0] if found else None


# What a query handler reads of a session: one answer (a row, or what a few statements
# make of theirs), or a list of rows.
FetchOne = Callable[[ReadSession], Awaitable[T | None]]
FetchMany = Callable[[ReadSession], Awaitable[list[Row]]]


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
        """One answer, or None: from the replica unless it has none, has one not `settled`
        yet, or fails."""
        if self.replica is not None and self.source == "replica":
            try:
                async with self._session(self.replica) as session:
                    found = await fetch(session)
            except DATA_ERRORS:
                raise
            except DATABASE_ERRORS:
                self._replica_failed()
            else:
                if found is not None and settled(found):
                    READS.labels("replica").inc()
                    return found
                REPLICA_FALLBACKS.labels("not-there-yet").inc()
        READS.labels("primary").inc()
        async with self._session(self.primary) as session:
            return await fetch(session)

    async def many(self, fetch: FetchMany) -> list[Row]:
        """Every row of a query, from the replica unless it fails (then from the primary):
        an empty or short list is an answer, not a row missing."""
        rows = await self.one(fetch)
        assert rows is not None  # a list, even an empty one
        return rows

    @asynccontextmanager
    async def primary_session(self) -> AsyncIterator[ReadSession]:
        """A session on the primary, for what must be current (the outbox backlog)."""
        async with self._session(self.primary) as session:
            yield session

    @asynccontextmanager
    async def _session(self, pool: BoundedPool) -> AsyncIterator[ReadSession]:
        async with pool.connection() as connection:
            yield ReadSession(connection, self.queries)

    def _replica_failed(self) -> None:
        # Skip it at once, not one failed read per request until the next probe.
        REPLICA_FALLBACKS.labels("failed").inc()
        self.status.state = "unreachable"
