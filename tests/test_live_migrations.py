"""Migrations on a database that serves payments meanwhile (service/db/migrate.py): a
migration that cannot have its locks gives up instead of queueing every payment query
behind it, and indexes are built CONCURRENTLY, outside a transaction, again after a
build that failed half-way."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from service.db.migrate import (
    NO_TRANSACTION,
    TRIES,
    MigrationError,
    migrate,
    migration_files,
    statements_of,
)
from tests.support.order_stub import OrderServiceStub
from tests.support.postgres import TestPostgres
from tests.support.processes import clean_env
from tests.support.relay_helpers import wait_until
from tests.support.service import serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()

ADD_A_COLUMN = "9001_payment_notes"
LOCK_TIMEOUT = 0.5
# What a create may take on top of the lock timeout on two busy shared cores; a create
# queued behind a migration that waits for ever takes as long as that wait.
MARGIN = 2.5
# The migration gives up after TRIES waits and the pauses between them: 4.4 s here.
GIVES_UP_WITHIN = 30.0


@asynccontextmanager
async def idle_in_transaction_reading_payments(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A session that read payments and sits idle in its transaction: it holds ACCESS
    SHARE on the table, which an ALTER TABLE must wait for."""
    connection = await asyncpg.connect(url, server_settings={"application_name": "forgotten"})
    try:
        transaction = connection.transaction()
        await transaction.start()
        await checks.lock_payments_table_for_reading(connection)
        yield connection
        await transaction.rollback()
    finally:
        await connection.close()


def migrations_dir(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "migrations"
    directory.mkdir()
    for version, text in files.items():
        (directory / f"{version}.sql").write_text(text, encoding="utf-8")
    return directory


@pytest.mark.slow  # the migration tries five times, for about 4 s
async def test_a_migration_that_waits_for_a_lock_gives_up_and_creates_do_not_queue_behind_it(
    database_url: str, db: asyncpg.Connection, order_stub: OrderServiceStub, tmp_path: Path
) -> None:
    directory = migrations_dir(
        tmp_path, **{ADD_A_COLUMN: "ALTER TABLE payments ADD COLUMN note text;\n"}
    )
    slowest = 0.0
    statuses: set[int] = set()
    done = asyncio.Event()

    async with serve(make_settings(database_url, order_stub.url)) as svc:

        async def keep_creating(first_order_id: int) -> None:
            nonlocal slowest
            order_id = first_order_id
            while not done.is_set():
                started = time.monotonic()
                body = {"order_id": order_id, "amount": 1000}
                response = await svc.client.post("/api/v1/payments/", json=body, timeout=60)
                slowest = max(slowest, time.monotonic() - started)
                statuses.add(response.status_code)
                order_id += 1

        async with idle_in_transaction_reading_payments(database_url):
            creating = [asyncio.create_task(keep_creating(n * 100_000)) for n in range(1, 5)]
            migrating = asyncio.create_task(
                migrate(database_url, lock_timeout=LOCK_TIMEOUT, directory=directory)
            )

            async def queued() -> bool:
                return bool(await checks.count_sessions_waiting_on_locks(db))

            await wait_until(queued, what="the ALTER TABLE waiting for its lock")
            # Unfixed, the ALTER waits for as long as the session idles: this long.
            await asyncio.wait({migrating}, timeout=GIVES_UP_WITHIN)
        done.set()
        await asyncio.gather(*creating)

    with pytest.raises(MigrationError) as failure:
        await migrating
    message = str(failure.value)
    assert f"migration {ADD_A_COLUMN} gave up" in message
    assert f"{TRIES} times it waited 0.5 s" in message and "nothing of it is applied" in message
    assert "idle in transaction" in message and "forgotten" in message
    assert "AccessShareLock on payments" in message
    assert not await checks.column_exists(db, table_name="payments", column_name="note")
    assert ADD_A_COLUMN not in {row["version"] async for row in checks.migration_records(db)}
    assert statuses == {201}
    assert slowest < LOCK_TIMEOUT + MARGIN, f"a create waited {slowest:.1f} s"


def test_a_no_transaction_file_splits_at_the_semicolons_that_end_statements() -> None:
    text = (
        f"{NO_TRANSACTION}\n"
        "-- a comment; not a statement\n"
        "CREATE INDEX/* a; comment */CONCURRENTLY IF NOT EXISTS i ON t (c);\n"
        "COMMENT ON INDEX i IS 'one; ''two''';\n"
        "DO $body$ BEGIN PERFORM 1; END $body$;\n"
        "/* the end; */\n"
    )
    assert statements_of(text) == [
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (c)",
        "COMMENT ON INDEX i IS 'one; ''two'''",
        "DO $body$ BEGIN PERFORM 1; END $body$",
    ]


UNIQUE_AMOUNTS = "9002_unique_amounts"
UNIQUE_AMOUNTS_SQL = f"""{NO_TRANSACTION}
-- Two statements, and semicolons in places that end none; of them.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS payments_amount_once ON payments (amount);
COMMENT ON INDEX payments_amount_once IS 'one payment per amount; a test''s index';
"""


async def test_an_index_that_a_failed_concurrent_build_left_invalid_is_built_again(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    directory = migrations_dir(tmp_path, **{UNIQUE_AMOUNTS: UNIQUE_AMOUNTS_SQL})
    first = await checks.insert_payment_row(
        db, order_id=1, amount=1000, currency="JPY", status="PROCESSING"
    )
    await checks.insert_payment_row(
        db, order_id=2, amount=1000, currency="JPY", status="PROCESSING"
    )

    # Outside a transaction (CONCURRENTLY refuses to run in one), the build fails on the
    # duplicate amounts and leaves the index behind, INVALID.
    with pytest.raises(asyncpg.UniqueViolationError):
        await migrate(database_url, lock_timeout=LOCK_TIMEOUT, directory=directory)
    half_built = await checks.index_state(db, index_name="payments_amount_once")
    assert half_built is not None and half_built["valid"] is False
    assert UNIQUE_AMOUNTS not in {row["version"] async for row in checks.migration_records(db)}

    await checks.change_payment_amount(db, payment_id=first, amount=2000)
    applied = await migrate(database_url, lock_timeout=LOCK_TIMEOUT, directory=directory)

    assert applied == [UNIQUE_AMOUNTS]
    built = await checks.index_state(db, index_name="payments_amount_once")
    assert built["valid"] is True  # dropped and built again, not skipped by IF NOT EXISTS
    assert built["comment"] == "one payment per amount; a test's index"


@pytest.mark.slow  # `payments db migrate` as a process
async def test_payments_db_migrate_names_the_migration_and_the_session_it_waited_for(
    postgres: TestPostgres, tmp_path: Path
) -> None:
    """The real migration 0017 on a database of the release before it, one session idle
    in a transaction that read payments: the command fails in seconds, saying so."""
    name, url = postgres.create_database()
    try:
        before = migrations_dir(
            tmp_path,
            **{
                path.name.removesuffix(".sql"): path.read_text(encoding="utf-8")
                for path in migration_files()
                if path.name < "0017"
            },
        )
        await migrate(url, directory=before)
        config = tmp_path / "litestar.toml"
        config.write_text("[database]\nmigration_lock_timeout_seconds = 0.2\n", encoding="utf-8")
        env = clean_env() | {"PAYMENTS_CONFIG": str(config), "PAYMENTS_DATABASE_URL": url}
        async with idle_in_transaction_reading_payments(url):
            result = await asyncio.to_thread(
                subprocess.run,
                [str(Path(sys.executable).parent / "payments"), "db", "migrate"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        connection = await asyncpg.connect(url)
        try:
            added = await checks.column_exists(
                connection, table_name="payments", column_name="created_xid"
            )
        finally:
            await connection.close()
    finally:
        postgres.drop_database(name)

    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stderr.splitlines()[-1]
    assert line.startswith("Error: migration 0017_payment_created_xid gave up:"), line
    assert "forgotten" in line and "AccessShareLock on payments" in line
    assert not added
