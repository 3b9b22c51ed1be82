"""`payments outbox status|replay|retry|purge`: the operators' commands on the outbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import click
import msgspec

from service.commands import ReplayDeadEvents, RetryWaitingEvents
from service.commands.outbox_operations import replay_dead_events, retry_waiting_events
from service.db.embedded import NoEmbeddedCluster, existing_database_url
from service.db.housekeeping import purge_delivered_events
from service.db.pool import connect, create_pool
from service.db.queries import Queries
from service.db.reader import ReadSession
from service.db.sql import load_queries
from service.db.unit_of_work import UnitOfWork
from service.queries.outbox_health import OutboxStatus, outbox_status
from service.settings import DatabaseSettings, load_settings

T = TypeVar("T")
log = logging.getLogger(__name__)


def _existing_database() -> tuple[str, DatabaseSettings]:
    try:
        # Status, replay and purge read what exists: a missing cluster is an error,
        # never an empty one made on the spot.
        database = load_settings().database
        return existing_database_url(database), database
    except NoEmbeddedCluster as exc:
        raise click.ClickException(str(exc)) from exc


def _with_connection(work: Callable[[Queries, asyncpg.Connection], Awaitable[T]]) -> T:
    url, database = _existing_database()

    async def run() -> T:
        connection = await connect(url, database)
        try:
            return await work(load_queries(), connection)
        finally:
            await connection.close()

    return asyncio.run(run())


def _with_write_side(work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Run a command of the write side, as the API does, on a pool of one connection."""
    url, database = _existing_database()
    one = msgspec.structs.replace(database, pool_min_size=1, pool_max_size=1)

    async def run() -> T:
        pool = await create_pool(url, one)
        try:
            return await work(UnitOfWork(pool, load_queries()))
        finally:
            await pool.close()

    return asyncio.run(run())


def _echo_json(value: object) -> None:
    click.echo(msgspec.json.encode(value).decode())


def _iso_timestamp(_: click.Context, __: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO timestamp: {value}") from exc


@click.group("outbox")
def outbox_group() -> None:
    """Inspect and repair the order-webhook outbox."""


@outbox_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_command(as_json: bool) -> None:
    """Pending (in flight, blocked), dead and delivered events; age of the oldest pending one."""
    status: OutboxStatus = _with_connection(
        lambda queries, connection: outbox_status(ReadSession(connection, queries))
    )
    if as_json:
        _echo_json(status)
        return
    oldest = status.oldest_pending_seconds
    rows = [
        ("pending", str(status.pending)),
        ("in flight", str(status.in_flight)),
        ("blocked", str(status.blocked)),
        ("dead", str(status.dead)),
        ("delivered", str(status.delivered)),
        ("oldest pending", "-" if oldest is None else f"{oldest:.1f}s"),
    ]
    for label, value in rows:
        click.echo(f"{label:<15}{value}")


@outbox_group.command("replay")
@click.option("--id", "event_id", type=click.UUID, help="One dead event, by its webhook-id.")
@click.option("--order", "order_id", type=int, help="The dead events of one order.")
@click.option(
    "--since", "dead_since", callback=_iso_timestamp, help="Events dead since this ISO time."
)
@click.option("--all-dead", is_flag=True, help="Every dead event.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def replay_command(as_json: bool, **filters: Any) -> None:
    """Give dead events a fresh set of delivery attempts, due now. Filters combine."""
    if not any(filters.values()):
        raise click.UsageError("name what to replay: --id, --order, --since or --all-dead")
    replayed = _with_write_side(lambda uow: replay_dead_events(ReplayDeadEvents(**filters), uow))
    if as_json:
        _echo_json({"replayed": len(replayed), "events": replayed})
        return
    for event in replayed:
        click.echo(f"{event.id}  order {event.order_id}")
    click.echo(f"replayed {len(replayed)} dead events")


@outbox_group.command("retry")
@click.option("--id", "event_id", type=click.UUID, help="One waiting event, by its webhook-id.")
@click.option("--order", "order_id", type=int, help="The waiting events of one order.")
@click.option(
    "--since", "created_since", callback=_iso_timestamp, help="Events queued since this ISO time."
)
@click.option("--all", "all_waiting", is_flag=True, help="Every waiting event.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def retry_command(as_json: bool, **filters: Any) -> None:
    """Send waiting events now: those waiting for their next delivery attempt, and blocked ones
    with the earlier events of their order they wait for (dead ones get a fresh set of
    attempts). Filters combine. Relays are woken, and probe a down Order Service at once."""
    if all(value in (None, False) for value in filters.values()):
        raise click.UsageError("name what to retry: --id, --order, --since or --all")
    retried = _with_write_side(lambda uow: retry_waiting_events(RetryWaitingEvents(**filters), uow))
    if as_json:
        _echo_json({"retried": len(retried), "events": retried})
        return
    for event in retried:
        was_dead = "  (was dead: fresh delivery attempts)" if event.was_dead else ""
        click.echo(f"{event.id}  order {event.order_id}{was_dead}")
    click.echo(f"retried {len(retried)} events, due now")


@outbox_group.command("purge")
@click.option("--days", type=float, help="Retention in days (default: outbox.retention_days).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def purge_command(days: float | None, as_json: bool) -> None:
    """Delete delivered events older than the retention; never undelivered ones."""
    retention = load_settings().outbox.retention_days if days is None else days
    purged = _with_connection(
        lambda queries, connection: purge_delivered_events(queries, connection, retention)
    )
    if as_json:
        _echo_json({"purged": purged or 0, "busy": purged is None})
    elif purged is None:
        click.echo("another relay is running retention right now; nothing done")
    else:
        click.echo(f"purged {purged} delivered events older than {retention:g} days")
