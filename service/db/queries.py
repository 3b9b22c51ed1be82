"""The typed face of `sql/*.sql`: one method per named query, as aiosql builds it.

aiosql makes these methods at run time, so nothing would check a query's name or
parameters before it runs. `Queries` says what each one takes and returns, for
mypy; `tests/test_query_types.py` checks that it names exactly the queries of
`sql/` with exactly their parameters. The SQL itself stays in `sql/`.

Shapes follow aiosql's operators: `^` one row or None, `$` one value, `!` the
command's status text, `<!` the returned value, none a stream of rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol, TypeAlias
from uuid import UUID

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # What a query runs on (the one name of it): a connection, or a pooled one. Never a
    # pool, whose acquire would wait without a bound: BoundedPool.connection() bounds it.
    Executor: TypeAlias = asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]

Row: TypeAlias = asyncpg.Record
Rows: TypeAlias = AsyncIterator[asyncpg.Record]


class PaymentQueries(Protocol):
    """sql/payments.sql, sql/refunds.sql, sql/gateway_events.sql: the write side."""

    async def start_retry(
        self,
        conn: Executor,
        *,
        payment_id: int,
        from_statuses: Sequence[str],
        payment_method_token: str | None,
        key_caller: str | None,
        key_endpoint: str | None,
        key_name: str | None,
        key_token: UUID | None,
    ) -> Row | None: ...
    async def lock_payment_by_transaction(
        self, conn: Executor, *, transaction_id: UUID
    ) -> Row | None: ...
    def claim_undecided_payments(
        self,
        conn: Executor,
        *,
        status: str,
        older_than_seconds: float,
        lease_seconds: float,
        max_rows: int,
    ) -> Rows: ...
    async def count_waiting_for_buyer(self, conn: Executor) -> int: ...
    async def flag_for_manual_review(
        self, conn: Executor, *, payment_id: int, older_than_seconds: float
    ) -> int | None: ...
    async def count_manual_review(self, conn: Executor) -> int: ...
    async def start_refund(
        self,
        conn: Executor,
        *,
        payment_id: int,
        from_statuses: Sequence[str],
        amount: Decimal | None,
        reason: str,
        request_id: str | None,
    ) -> Row | None: ...
    def settle_refunds(
        self,
        conn: Executor,
        *,
        refund_ids: Sequence[int],
        statuses: Sequence[str],
        gateway_references: Sequence[str | None],
        failure_codes: Sequence[str | None],
        failure_messages: Sequence[str | None],
        from_statuses: Sequence[str],
    ) -> Rows: ...
    def claim_pending_refunds(
        self, conn: Executor, *, older_than_seconds: float, lease_seconds: float, max_rows: int
    ) -> Rows: ...
    async def lock_refund_of_event(
        self, conn: Executor, *, transaction_id: UUID, refund_id: int | None
    ) -> Row | None: ...
    def find_refunds(self, conn: Executor, *, refund_ids: Sequence[int]) -> Rows: ...
    async def live_refund_of_payment(self, conn: Executor, *, payment_id: int) -> int | None: ...
    async def record_gateway_event(
        self, conn: Executor, *, webhook_id: str, transaction_id: UUID, status: str
    ) -> str | None: ...
    async def try_lock_gateway_event_purge(self, conn: Executor) -> bool: ...
    async def purge_gateway_events(
        self, conn: Executor, *, retention_days: float, max_events: int
    ) -> int: ...


class PaymentBatchQueries(Protocol):
    """sql/payment_batches.sql: a batch of creates, one statement per step."""

    def insert_processing_many(
        self, conn: Executor, *, items: Sequence[Mapping[str, object]]
    ) -> Rows: ...
    def settle_payments(
        self,
        conn: Executor,
        *,
        payment_ids: Sequence[int],
        transaction_ids: Sequence[UUID],
        statuses: Sequence[str],
        gateway_references: Sequence[str | None],
        next_actions: Sequence[str | None],
        failure_codes: Sequence[str | None],
        failure_messages: Sequence[str | None],
        request_ids: Sequence[str | None],
        from_statuses: Sequence[str],
    ) -> Rows: ...
    def find_payments(self, conn: Executor, *, payment_ids: Sequence[int]) -> Rows: ...


class ReadQueries(Protocol):
    """sql/payment_views.sql and sql/health.sql: the read side."""

    async def payment_by_id(self, conn: Executor, *, payment_id: int) -> Row | None: ...
    async def payment_by_order(self, conn: Executor, *, order_id: int) -> Row | None: ...
    async def payment_list_cursor(self, conn: Executor, *, payment_id: int) -> Row | None: ...
    def list_payments(
        self,
        conn: Executor,
        *,
        status: str | None,
        created_gte: datetime | None,
        created_lt: datetime | None,
        metadata: Mapping[str, str] | None,
        after_xid: int | None,
        after_id: int | None,
        max_rows: int,
    ) -> Rows: ...
    async def outbox_lag(self, conn: Executor) -> Row: ...


class ReplicaQueries(Protocol):
    """sql/replica.sql: the read side's replica check (primary, then replica)."""

    async def primary_wal_position(self, conn: Executor) -> int: ...
    async def replica_replay_position(self, conn: Executor) -> Row: ...


class IdempotencyQueries(Protocol):
    """sql/idempotency.sql. `token` is a claim's: only it completes or releases a key;
    `caller` the fingerprint of the caller whose key it is."""

    async def claim_idempotency_key(
        self,
        conn: Executor,
        *,
        caller: str,
        endpoint: str,
        key: str,
        request_hash: bytes,
        token: UUID,
        ttl_seconds: float,
        lock_seconds: float,
    ) -> Row | None: ...
    async def find_idempotency_key(
        self, conn: Executor, *, caller: str, endpoint: str, key: str
    ) -> Row | None: ...
    async def complete_idempotency_key(
        self,
        conn: Executor,
        *,
        token: UUID,
        response_status: int,
        response_content_type: str,
        response_body: bytes,
        caller: str,
        endpoint: str,
        key: str,
    ) -> str: ...
    async def release_idempotency_key(
        self, conn: Executor, *, caller: str, endpoint: str, key: str, token: UUID
    ) -> str: ...
    async def try_lock_idempotency_key_purge(self, conn: Executor) -> bool: ...
    async def purge_expired_idempotency_keys(self, conn: Executor, *, max_keys: int) -> int: ...


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


class ConsoleQueries(Protocol):
    """sql/console.sql: the operator console's figures, its events to act on, its jobs."""

    def console_payment_totals(self, conn: Executor) -> Rows: ...
    def console_manual_review(self, conn: Executor, *, max_rows: int) -> Rows: ...
    def console_payments_per_minute(self, conn: Executor) -> Rows: ...
    def console_delivery_lag_per_minute(self, conn: Executor) -> Rows: ...
    def console_stuck_events(self, conn: Executor, *, max_rows: int) -> Rows: ...
    async def record_replay_job(
        self, conn: Executor, *, started_by: str, dead_since: datetime, event_ids: Sequence[UUID]
    ) -> int: ...
    def console_replay_jobs(self, conn: Executor, *, job_id: int | None, max_rows: int) -> Rows: ...


class MigrationQueries(Protocol):
    """sql/migrations.sql."""

    async def create_migrations_table(self, conn: Executor) -> str: ...
    async def try_lock_migrations(self, conn: Executor) -> bool: ...
    async def unlock_migrations(self, conn: Executor) -> bool: ...
    def applied_migrations(self, conn: Executor) -> Rows: ...
    async def record_migration(self, conn: Executor, *, version: str) -> str: ...
    async def limit_lock_waits(
        self, conn: Executor, *, milliseconds: int, transaction_only: bool
    ) -> str: ...
    async def unlimit_lock_waits(self, conn: Executor) -> str: ...
    async def invalid_index_drop(self, conn: Executor, *, index_name: str) -> str | None: ...
    def long_transactions(self, conn: Executor, *, older_than_seconds: float) -> Rows: ...


class Queries(
    PaymentQueries,
    PaymentBatchQueries,
    ReadQueries,
    ReplicaQueries,
    IdempotencyQueries,
    OutboxQueries,
    EventQueries,
    ConsoleQueries,
    MigrationQueries,
    Protocol,
):
    """Every query of `sql/` but the operators' `ops_*`, which `payments ops` runs by name
    (service/ops/queries.py) because operators choose them at run time."""
