"""What controllers receive by injection: built once in the lifespan, kept in app.state."""

from __future__ import annotations

import uuid

import asyncpg
from litestar.datastructures import State
from litestar.di import Provide

from service.db.unit_of_work import UnitOfWork
from service.gateway import PaymentGateway
from service.request_context import request_id_var
from service.settings import Settings


def provide_uow(state: State) -> UnitOfWork:
    uow: UnitOfWork = state.uow
    return uow


def provide_pool(state: State) -> asyncpg.Pool:
    pool: asyncpg.Pool = state.pool
    return pool


def provide_gateway(state: State) -> PaymentGateway:
    gateway: PaymentGateway = state.gateway
    return gateway


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def provide_request_id() -> str:
    """The request's id (see RequestIdMiddleware); it travels into the outbox row."""
    return request_id_var.get() or uuid.uuid4().hex


DEPENDENCIES = {
    "uow": Provide(provide_uow, sync_to_thread=False),
    "pool": Provide(provide_pool, sync_to_thread=False),
    "gateway": Provide(provide_gateway, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "request_id": Provide(provide_request_id, sync_to_thread=False),
}
