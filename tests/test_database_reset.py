"""The test databases' reuse (tests/support/database_reset.py): a used database counts as
fresh only when emptying its tables made it like a new copy of the template."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.support.database_reset import count_ddl, fresh_state, reset
from tests.support.payments import insert_processing
from tests.support.postgres import TestPostgres
from tests.support.sql import load_test_queries

checks = load_test_queries()
PLAIN = "test_reset_plain"


@pytest.fixture
async def copy_url(postgres: TestPostgres, template_database: str) -> AsyncIterator[str]:
    name, url = postgres.create_database(template_database)
    yield url
    await postgres.drop(name)


async def test_a_database_with_rows_is_emptied_and_its_ids_start_again(copy_url: str) -> None:
    fresh = await fresh_state(copy_url)
    used = await asyncpg.connect(copy_url)
    await insert_processing(used, 1)
    await insert_processing(used, 2)

    assert await reset(copy_url, fresh) is True
    used.terminate()  # the reset ended its session
    connection = await asyncpg.connect(copy_url)
    try:
        assert int(await checks.count_payments(connection)) == 0
        assert (await insert_processing(connection, 3))["id"] == 1
    finally:
        await connection.close()


@pytest.mark.parametrize(
    "change",
    [
        "add_stray_column",
        "add_stray_function",
        "drop_an_index",
        "change_a_database_setting",
        "change_a_seeded_row",
    ],
)
async def test_a_change_beyond_rows_makes_it_not_fresh(copy_url: str, change: str) -> None:
    fresh = await fresh_state(copy_url)
    connection = await asyncpg.connect(copy_url)
    try:
        await getattr(checks, change)(connection)
    finally:
        await connection.close()

    assert await reset(copy_url, fresh) is False


async def test_a_server_that_refuses_event_triggers_gets_no_reused_database(
    postgres: TestPostgres,
) -> None:
    # A role that may create a schema, a sequence and a function in a new template, but,
    # not being a superuser, no event trigger: its copies could not count their DDL.
    database, url = postgres.create_database()
    parts = urlsplit(url)
    as_plain = urlunsplit(parts._replace(netloc=f"{PLAIN}:{PLAIN}@{parts.netloc.split('@')[-1]}"))
    admin = await asyncpg.connect(postgres.admin_url)
    try:
        await admin.execute(f"CREATE ROLE {PLAIN} LOGIN PASSWORD '{PLAIN}'")
        await admin.execute(f'GRANT CREATE ON DATABASE "{database}" TO {PLAIN}')
        assert await count_ddl(as_plain) is False
    finally:
        await admin.execute(f'REVOKE ALL ON DATABASE "{database}" FROM {PLAIN}')
        await admin.execute(f"DROP ROLE IF EXISTS {PLAIN}")
        await admin.close()
        await postgres.drop(database)


async def test_the_template_counts_ddl(copy_url: str) -> None:
    fresh = await fresh_state(copy_url)
    connection = await asyncpg.connect(copy_url)
    try:
        # Counted even when it is undone: the copy is replaced, never wrongly reused.
        await checks.add_stray_function(connection)
        await connection.execute("DROP FUNCTION stray()")
    finally:
        await connection.close()

    assert await reset(copy_url, fresh) is False
