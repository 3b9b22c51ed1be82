"""The outbox relay's way to the database: each statement it runs, as a typed method.

The relay (service/outbox/relay.py) names no query of sql/; it claims, records, releases,
purges, wakes and pings through a RelayStore over its own pool. The statements are in
sql/outbox.sql.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg
import msgspec

from service.db.housekeeping import purge_delivered_events
from service.db.pool import BoundedPool
from service.db.queries import Queries

if TYPE_CHECKING:
    from service.db.queries import Executor


class ClaimedEvent(msgspec.Struct, frozen=True):
    """An event a relay holds a claim on: where it goes and what is sent."""

    id: UUID  # the webhook-id header
    order_id: int
    body: bytes  # exactly what is posted, and signed
    delivery_attempts: int  # spent so far: this send is attempt delivery_attempts + 1
    request_id: str | None  # of the API call that caused it, for the relay's log lines


class Result(enum.Enum):
    """What one send came to, as sql/outbox.sql record_outcomes spells it."""

    DELIVERED = "delivered"
    # A delivery attempt spent: due again after delay_seconds, or dead.
    FAILED = "failed"
    # Failed while the Order Service as a whole was failing: no delivery attempt counted.
    DEFERRED = "deferred"
    # Not sent: handed back as it was (stopping, a lease too close to its end, or the
    # Order Service down and this event not the probe).
    RELEASED = "released"


class Outcome(msgspec.Struct, frozen=True):
    event_id: UUID
    result: Result
    error: str = ""
    delay_seconds: float = 0.0
    dead: bool = False


class RelayStore:
    def __init__(self, pool: BoundedPool, queries: Queries) -> None:
        self.pool = pool
        self._sql = queries

    async def claim(
        self, relay_id: str, *, lease_seconds: float, max_events: int
    ) -> list[ClaimedEvent]:
        """Up to `max_events` due events, leased to `relay_id`, oldest first, never an
        order's event before its earlier ones (SKIP LOCKED: relays never wait on each other)."""
        async with self.pool.connection() as connection:
            rows = self._sql.claim_due_events(
                connection, relay_id=relay_id, lease_seconds=lease_seconds, max_events=max_events
            )
            return [_claimed(row) async for row in rows]

    async def claim_probe(self, relay_id: str, *, lease_seconds: float) -> list[ClaimedEvent]:
        """The event due the longest, to probe a down Order Service with (none: nothing due)."""
        async with self.pool.connection() as connection:
            rows = self._sql.claim_probe_event(
                connection, relay_id=relay_id, lease_seconds=lease_seconds
            )
            return [_claimed(row) async for row in rows]

    async def record(self, relay_id: str, outcomes: Sequence[Outcome]) -> None:
        """What the sends came to, in one statement; idempotent, so it may be retried."""
        if not outcomes:
            return
        async with self.pool.connection() as connection:
            await self._sql.record_outcomes(
                connection,
                relay_id=relay_id,
                ids=[o.event_id for o in outcomes],
                results=[o.result.value for o in outcomes],
                errors=[o.error for o in outcomes],
                delays_seconds=[o.delay_seconds for o in outcomes],
                dead=[o.dead for o in outcomes],
            )

    async def release_claims(self, relay_id: str) -> int:
        """Give back every event `relay_id` still holds; how many."""
        async with self.pool.connection() as connection:
            return await self._sql.release_claims_of_relay(connection, relay_id=relay_id)

    async def purge_delivered(self, retention_days: float) -> int | None:
        """Delete events delivered more than `retention_days` ago, a chunk per transaction;
        None when another relay holds the retention lock."""
        async with self.pool.connection() as connection:
            return await purge_delivered_events(self._sql, connection, retention_days)

    async def notify_relays(self, sender: str) -> None:
        """NOTIFY every listening relay; `sender` lets a process skip its own wake-up."""
        async with self.pool.connection() as connection:
            await self._sql.wake_relays(connection, sender=sender)

    async def ping(self, connection: Executor) -> None:
        """A round trip on a relay's LISTEN connection (its own, outside the pool)."""
        await self._sql.relay_listener_ping(connection)


def _claimed(row: asyncpg.Record) -> ClaimedEvent:
    body = row["body"]
    if body is None:  # no statement of the service writes one: a hand edit, schema drift
        raise ValueError(f"outbox event {row['id']} has no body to send")
    return ClaimedEvent(
        id=row["id"],
        order_id=row["order_id"],
        body=body.encode(),
        delivery_attempts=row["delivery_attempts"],
        request_id=row["request_id"],
    )
