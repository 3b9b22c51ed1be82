"""What controllers receive by injection: built once in the lifespan, kept in app.state.

One dependency per handler where possible: Litestar resolves two or more
dependencies of a handler concurrently, in an anyio task group, which cost the
create endpoint about a tenth of its CPU for values that are plain attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.datastructures import State
from litestar.di import Provide

from service.db.reader import Reader
from service.db.unit_of_work import UnitOfWork
from service.gateway import Gateway
from service.outbox import RelayHandle
from service.queries.outbox_health import SharedBacklog
from service.settings import Settings


@dataclass(frozen=True, slots=True)
class WriteSide:
    """What a command handler needs: its unit of work and the payment gateway."""

    uow: UnitOfWork
    gateway: Gateway
    settings: Settings


@dataclass(frozen=True, slots=True)
class ReadSide:
    """What a query handler needs: the reader (replica or primary, service/db/reader.py),
    the settings, and for readiness and the metrics the outbox backlog (read on the
    primary) and this process's relay (None when it runs none)."""

    backlog: SharedBacklog
    reader: Reader
    settings: Settings
    relay: RelayHandle | None = None


def provide_write_side(state: State) -> WriteSide:
    write_side: WriteSide = state.write_side
    return write_side


def provide_read_side(state: State) -> ReadSide:
    read_side: ReadSide = state.read_side
    return read_side


DEPENDENCIES = {
    "write": Provide(provide_write_side, sync_to_thread=False),
    "read": Provide(provide_read_side, sync_to_thread=False),
}
