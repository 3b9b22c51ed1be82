"""The unit of work a command handler writes through.

A handler asks for a `Session` (a pooled connection with the write side's statements,
typed) and the unit of work does the bookkeeping of the commit: when a statement of
the session queued an order webhook, the relays are woken once the block ends, so no
handler has to remember to (a forgotten wake-up would leave a webhook waiting for the
next poll).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from service.db.group_commit import GroupCommit
from service.db.pool import BoundedPool
from service.db.queries import Queries
from service.db.session import Charge, NewPayment, Session, Settlement
from service.domain.model import Payment


class UnitOfWork:
    """`transaction()` rolls back unless its block completes; `connection()` is for
    commands whose writes are single statements, which PostgreSQL already makes
    atomic, saving the BEGIN/COMMIT round trips on the hot path."""

    def __init__(
        self,
        pool: BoundedPool,
        queries: Queries,
        *,
        on_webhooks_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.pool = pool
        self.queries = queries
        self._on_webhooks_queued = on_webhooks_queued
        self._inserts = GroupCommit(self._insert_group)
        self._settlements = GroupCommit(self._settle_group)

    async def insert_processing(self, payments: Sequence[NewPayment]) -> list[Charge | None]:
        """Each new PROCESSING payment, committed, or None for an order that already has one
        (of two items naming one order, the first gets it).

        Group commit: one INSERT for every create that arrives meanwhile; a caller's items
        stay together.
        """
        return await self._inserts(payments)

    async def settle(self, settlements: Sequence[Settlement]) -> list[Payment | None]:
        """Each payment settled with its order webhook queued, committed; None for one that
        could no longer move there. Group commit: one UPDATE for the settlements that
        arrive meanwhile."""
        return await self._settlements(settlements)

    async def _insert_group(self, group: list[NewPayment]) -> list[Charge | None]:
        async with self.connection() as session:
            created = {c.payment.order_id: c for c in await session.insert_processing_many(group)}
        # Two creates of one order in one group: the first gets the payment, the other none.
        return [created.pop(new.payment.order_id, None) for new in group]

    async def _settle_group(self, group: list[Settlement]) -> list[Payment | None]:
        async with self.connection() as session:
            settled = {p.id: p for p in await session.settle_many(group)}
        return [settled.pop(settlement.payment_id, None) for settlement in group]

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Session]:
        session: Session | None = None
        try:
            async with self.pool.connection() as connection:
                session = Session(connection, self.queries)
                yield session
        finally:
            # Also after a rollback: a wake-up that finds nothing costs one claim.
            if session is not None and session.queued_webhooks:
                self._on_webhooks_queued()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        async with self.connection() as session, session.connection.transaction():
            yield session
