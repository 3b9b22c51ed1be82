"""The operators' outbox commands: redeliver one event, replay dead ones, retry waiting
ones (POST /api/v1/events/{id}/redeliver, `payments outbox replay|retry`, the console),
and replay dead ones as a job the console follows.

Each runs in one transaction and wakes the relays with it: the NOTIFY is sent on commit,
so relays never wake before the rows show, and they deliver at once, probing an Order
Service they hold for down without waiting for the pause to end.
"""

from __future__ import annotations

from uuid import UUID

import msgspec

from service.commands.messages import (
    RedeliverEvent,
    ReplayDeadEvents,
    RetryWaitingEvents,
    StartReplayJob,
)
from service.db.queries import Row
from service.db.rows import row_as
from service.db.session import OPERATOR_WAKEUP, Session
from service.db.unit_of_work import UnitOfWork


class ReplayedEvent(msgspec.Struct, frozen=True):
    id: UUID
    order_id: int
    seq: int


class RetriedEvent(msgspec.Struct, frozen=True):
    id: UUID
    order_id: int
    seq: int
    # It was dead, ahead of a blocked event that was retried: a fresh set of delivery
    # attempts.
    was_dead: bool


class Redelivery(msgspec.Struct, frozen=True):
    """What a redelivery set going (the answer of POST /api/v1/events/{id}/redeliver)."""

    id: UUID
    order_id: int
    # The events of the order now due, in the order the relay sends them: the earlier
    # undelivered ones the event waits for, the event, then the later ones of its order
    # (already delivered, or not yet: those not dead).
    sending: list[UUID]


class ReplayJob(msgspec.Struct, frozen=True):
    """A replay kept as a job: its id, and the dead events it made due."""

    id: int
    event_ids: list[UUID]


async def replay_dead_events(command: ReplayDeadEvents, uow: UnitOfWork) -> list[ReplayedEvent]:
    """Dead events due now, with a fresh set of delivery attempts."""
    async with uow.transaction() as session:
        rows = await session.replay_dead_events(**msgspec.structs.asdict(command))
        await _wake_relays(session, rows)
    return [row_as(row, ReplayedEvent) for row in rows]


async def start_replay_job(command: StartReplayJob, uow: UnitOfWork) -> ReplayJob:
    """Replay every event dead since the command's time, and keep the job with the events
    it made due, in the same transaction: a job never names events it did not replay."""
    async with uow.transaction() as session:
        rows = await session.replay_dead_events(dead_since=command.dead_since)
        event_ids = [row["id"] for row in sorted(rows, key=lambda row: row["seq"])]
        job_id = await session.record_replay_job(command.started_by, command.dead_since, event_ids)
        await _wake_relays(session, rows)
    return ReplayJob(job_id, event_ids)


async def retry_waiting_events(command: RetryWaitingEvents, uow: UnitOfWork) -> list[RetriedEvent]:
    """Waiting events due now: a blocked one comes with the earlier events of its order it
    waits for, dead ones included (with a fresh set of delivery attempts)."""
    async with uow.transaction() as session:
        rows = await session.retry_waiting_events(**msgspec.structs.asdict(command))
        await _wake_relays(session, rows)
    return [row_as(row, RetriedEvent) for row in sorted(rows, key=lambda row: row["seq"])]


async def redeliver_event(command: RedeliverEvent, uow: UnitOfWork) -> Redelivery | None:
    """Send one event again now, whatever its state, keeping its order's order; None when
    no event has that id.

    A dead event gets a fresh set of delivery attempts, as a replay gives; a delivered one
    is sent again, and so is every later event of its order, after it (sql/events.sql
    reopen_event): one a relay is sending at that moment goes again once that send has
    ended. The earlier undelivered events of its order it would wait for are made due
    first, as a retry makes them. An undelivered event a relay is sending at that moment
    is left to that send.
    """
    event_id = command.event_id
    async with uow.transaction() as session:
        # An event of the order queued meanwhile commits after this transaction.
        if not await session.lock_order_of_event(event_id):
            return None
        rows = [
            *await session.replay_dead_events(event_id=event_id),
            *await session.reopen_event(event_id),
            *await session.retry_waiting_events(event_id=event_id),
        ]
        await _wake_relays(session, rows)
    # reopen_event returns the event itself whenever it exists (retention may have
    # deleted it since the lock).
    target = next((row for row in rows if row["id"] == event_id), None)
    if target is None:
        return None
    by_seq = {row["seq"]: row["id"] for row in rows}
    return Redelivery(event_id, target["order_id"], [by_seq[seq] for seq in sorted(by_seq)])


async def _wake_relays(session: Session, made_due: list[Row]) -> None:
    if made_due:
        await session.wake_relays(OPERATOR_WAKEUP)
