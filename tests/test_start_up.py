"""A start-up that fails part way releases what it had opened (service/lifespan.py)."""

from __future__ import annotations

import asyncpg
import msgspec
import pytest

from service.app import create_app
from service.settings import Settings
from tests.support.order_stub import OrderServiceStub
from tests.support.service import APP_SECTIONS, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

checks = load_test_queries()


async def test_a_failed_start_up_step_leaves_no_connection_open(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    # The relay refuses this setting after the pool (4 connections at least) is open.
    settings = make_settings(
        database_url,
        order_stub.url,
        outbox={"lease_seconds": 1.0, "request_timeout_seconds": 5.0},
    )
    with pytest.raises(RuntimeError, match="start-up"):
        async with serve(settings):
            pass

    assert int(await checks.count_other_sessions(db)) == 0


def test_the_app_is_built_from_the_server_and_auth_settings_alone() -> None:
    # Tests reuse a stopped app for other settings with the same APP_SECTIONS: create_app
    # must read no other section (the lifespan and middleware read them at each start).
    settings = make_settings("postgresql://any/db", "http://any")
    others = {name: None for name in Settings.__struct_fields__ if name not in APP_SECTIONS}
    assert create_app(msgspec.structs.replace(settings, **others)).state.settings.server
