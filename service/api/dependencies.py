"""What controllers receive by injection: built once in the lifespan, kept in app.state.

One dependency per handler where possible: Litestar resolves two or more
dependencies of a handler concurrently, in an anyio task group, which cost the
create endpoint about a tenth of its CPU for values that are plain attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from litestar.datastructures import State
from litestar.di import Provide

from service.db.unit_of_work import UnitOfWork
from service.gateway import PaymentGateway
from service.settings import Settings


@dataclass(frozen=True, slots=True)
class WriteSide:
    """What a command handler needs: its unit of work and the payment gateway."""

    uow: UnitOfWork
    gateway: PaymentGateway
    settings: Settings


def provide_write_side(state: State) -> WriteSide:
    write_side: WriteSide = state.write_side
    return write_side


def provide_pool(state: State) -> asyncpg.Pool:
    pool: asyncpg.Pool = state.pool
    return pool


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


DEPENDENCIES = {
    "write": Provide(provide_write_side, sync_to_thread=False),
    "pool": Provide(provide_pool, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
}
