"""The typed faces of sql/outbox.sql and sql/events.sql (see service/db/queries.py, which
combines the faces)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeAlias
from uuid import UUID

import asyncpg

if TYPE_CHECKING:
    from service.db.queries import Executor

Row: TypeAlias = asyncpg.Record
Rows: TypeAlias = AsyncIterator[asyncpg.Record]


class OutboxQueries(Protocol):
    """sql/outbox.sql: the relay, retention, and the operators' status, replay and retry."""

    def claim_due_events(
        self, conn: Executor, *, relay_id: str, lease_seconds: float, max_events: int
    ) -> Rows: ...
    def claim_probe_event(self, conn: Executor, *, relay_id: str, lease_seconds: float) -> Rows: ...
    async def record_outcomes(
        self,
        conn: Executor,
        *,
        relay_id: str,
        ids: Sequence[UUID],
        results: Sequence[str],
        errors: Sequence[str],
        delays_seconds: Sequence[float],
        dead: Sequence[bool],
    ) -> str: ...
    async def release_claims_of_relay(self, conn: Executor, *, relay_id: str) -> int: ...
    async def wake_relays(self, conn: Executor, *, sender: str) -> bool: ...
    async def relay_listener_ping(self, conn: Executor) -> int: ...
    async def try_lock_outbox_retention(self, conn: Executor) -> bool: ...
    async def purge_delivered_events(
        self, conn: Executor, *, retention_days: float, max_events: int
    ) -> int: ...
    async def outbox_status(self, conn: Executor) -> Row: ...
    def replay_dead_events(
        self,
        conn: Executor,
        *,
        event_id: UUID | None,
        order_id: int | None,
        dead_since: datetime | None,
        all_dead: bool,
    ) -> Rows: ...
    def retry_waiting_events(
        self,
        conn: Executor,
        *,
        event_id: UUID | None,
        order_id: int | None,
        created_since: datetime | None,
        all_waiting: bool,
    ) -> Rows: ...


class EventQueries(Protocol):
    """sql/events.sql: the outbox as the events API reads it, and an event reopened."""

    def list_events(
        self,
        conn: Executor,
        *,
        order_id: int | None,
        starting_after: UUID | None,
        max_rows: int,
    ) -> Rows: ...
    async def find_event_id(self, conn: Executor, *, event_id: UUID) -> Row | None: ...
    async def lock_order_of_event(self, conn: Executor, *, event_id: UUID) -> Row | None: ...
    def reopen_event(self, conn: Executor, *, event_id: UUID) -> Rows: ...
