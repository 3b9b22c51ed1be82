"""Schema migrations (service/db/migrate.py) and the rules the schema itself enforces."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from service.db.migrate import migrate, migration_files
from service.db.sql import MIGRATIONS_DIR, load_queries
from tests.support.order_stub import OrderServiceStub
from tests.support.payments import find_payment
from tests.support.postgres import TestPostgres
from tests.support.service import serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

sql: Any = load_queries()
checks: Any = load_test_queries()

EXPECTED_VERSIONS = [path.stem for path in migration_files()]
RELATIONS = ["schema_migrations", "payments", "refunds", "outbox", "gateway_events"]


@pytest.fixture
def empty_database_url(postgres: TestPostgres) -> Iterator[str]:
    """A brand-new database with no schema at all."""
    name, url = postgres.create_database()
    yield url
    postgres.drop_database(name)


@pytest.fixture
async def empty_db(empty_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(empty_database_url)
    yield connection
    await connection.close()


async def migration_records(connection: asyncpg.Connection) -> dict[str, int]:
    return {row["version"]: row["times"] async for row in checks.migration_records(connection)}


def test_every_sql_file_in_migrations_is_a_numbered_migration() -> None:
    assert EXPECTED_VERSIONS, "no migration files found"
    assert set(MIGRATIONS_DIR.glob("*.sql")) == set(migration_files()), "a file would be skipped"
    assert EXPECTED_VERSIONS[0].startswith("0001_")
    numbers = [version.split("_", 1)[0] for version in EXPECTED_VERSIONS]
    assert len(set(numbers)) == len(numbers), "two migrations share a number"


async def test_migrate_applies_every_file_in_order_on_an_empty_database(
    empty_database_url: str, empty_db: asyncpg.Connection
) -> None:
    assert not await checks.relation_exists(empty_db, relation="schema_migrations")

    applied = await migrate(empty_database_url)

    assert applied == EXPECTED_VERSIONS
    assert await migration_records(empty_db) == dict.fromkeys(EXPECTED_VERSIONS, 1)
    for relation in [*RELATIONS, "payment_resource"]:
        assert await checks.relation_exists(empty_db, relation=relation), relation


async def test_the_service_migrates_an_empty_database_when_it_starts(
    empty_database_url: str, empty_db: asyncpg.Connection, order_stub: OrderServiceStub
) -> None:
    settings = make_settings(empty_database_url, order_stub.url)
    assert settings.database.migrate_on_start  # the default, kept for databases not migrated

    async with serve(settings) as running:
        assert await migration_records(empty_db) == dict.fromkeys(EXPECTED_VERSIONS, 1)
        created = await running.client.post("/api/v1/payments", json={"order_id": 1, "amount": 500})
        assert created.status_code == 201, created.text


async def test_a_second_migrate_applies_nothing(
    empty_database_url: str, empty_db: asyncpg.Connection
) -> None:
    await migrate(empty_database_url)

    assert await migrate(empty_database_url) == []
    assert await migration_records(empty_db) == dict.fromkeys(EXPECTED_VERSIONS, 1)


async def test_concurrent_migrations_on_a_fresh_database_apply_each_file_once(
    empty_database_url: str, empty_db: asyncpg.Connection
) -> None:
    results = await asyncio.gather(*(migrate(empty_database_url) for _ in range(5)))

    # Exactly one migrator applied everything; the others found it done.
    assert sorted(results, key=len, reverse=True) == [EXPECTED_VERSIONS, [], [], [], []]
    assert await migration_records(empty_db) == dict.fromkeys(EXPECTED_VERSIONS, 1)


def copies_of_the_migrations(directory: Path) -> Path:
    """A migrations directory of the test's own, holding copies of migrations/."""
    directory.mkdir()
    for path in migration_files():
        (directory / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return directory


async def test_a_failing_migration_leaves_nothing_of_itself_applied(
    empty_database_url: str, empty_db: asyncpg.Connection, tmp_path: Path
) -> None:
    # The last migration fails half-way: it creates a table, then the payments table a
    # second time. Each migration is a transaction of its own.
    directory = copies_of_the_migrations(tmp_path / "migrations")
    broken = directory / "9999_broken.sql"
    broken.write_text(
        "CREATE TABLE half_applied (id integer);\n"
        + (MIGRATIONS_DIR / "0001_payments.sql").read_text(encoding="utf-8"),
        encoding="utf-8",
    )

    with pytest.raises(asyncpg.DuplicateTableError):
        await migrate(empty_database_url, directory=directory)

    assert not await checks.relation_exists(empty_db, relation="half_applied")
    # The migrations before it are applied and recorded, and stay so.
    assert await migration_records(empty_db) == dict.fromkeys(EXPECTED_VERSIONS, 1)
    for relation in RELATIONS:
        assert await checks.relation_exists(empty_db, relation=relation), relation

    broken.unlink()
    assert await migrate(empty_database_url, directory=directory) == []


# --- the database enforces the rules ---------------------------------------------------------


async def insert_payment(
    connection: asyncpg.Connection,
    *,
    order_id: int = 1,
    amount: Decimal = Decimal(5000),
    currency: str = "JPY",
    status: str = "COMPLETED",
) -> int:
    """A payment row inserted as is, in `status`: a past without the moves that lead
    there, on purpose (these tests check the columns' own constraints)."""
    payment_id: int = await checks.insert_payment_row(
        connection, order_id=order_id, amount=amount, currency=currency, status=status
    )
    return payment_id


@pytest.mark.parametrize(
    "amount", [Decimal(100), Decimal("100.0"), Decimal(1_000_000), Decimal(89800)], ids=str
)
async def test_the_schema_accepts_a_valid_payment(db: asyncpg.Connection, amount: Decimal) -> None:
    payment_id = await insert_payment(db, amount=amount)
    assert await checks.payment_status(db, payment_id=payment_id) == "COMPLETED"


async def test_the_schema_refuses_a_payment_that_breaks_a_rule(
    db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    for fields in [
        {"amount": Decimal(99)},
        {"amount": Decimal("99.99")},
        {"amount": Decimal("100.5")},
        {"amount": Decimal("999999.1")},
        {"amount": Decimal(1_000_001)},
        {"amount": Decimal(-100)},
        {"currency": "USD"},
        {"currency": "jpy"},
        {"status": "WEIRD"},
        {"status": "completed"},
        {"order_id": 0},
        {"order_id": -1},
    ]:
        with subtests.test(fields=fields), pytest.raises(asyncpg.CheckViolationError):
            await insert_payment(db, **fields)


async def test_the_schema_refuses_a_second_payment_for_one_order(db: asyncpg.Connection) -> None:
    await insert_payment(db, order_id=42, status="FAILED")
    with pytest.raises(asyncpg.UniqueViolationError):
        await insert_payment(db, order_id=42, status="PROCESSING")


async def test_the_schema_refuses_a_second_refund_for_one_payment(db: asyncpg.Connection) -> None:
    payment_id = await insert_payment(db, status="REFUNDED")
    await checks.insert_refund_row(db, payment_id=payment_id, amount=Decimal(5000), reason="a")
    with pytest.raises(asyncpg.UniqueViolationError):
        await checks.insert_refund_row(
            db, payment_id=payment_id, amount=Decimal(5000), reason="again"
        )
    assert await checks.count_refunds_of_payment(db, payment_id=payment_id) == 1


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        (Decimal(99), "r"),
        (Decimal("100.5"), "r"),
        (Decimal(1_000_001), "r"),
        (Decimal(100), "x" * 501),
    ],
    ids=["amount-99", "amount-100.5", "amount-1000001", "reason-501-chars"],
)
async def test_the_schema_refuses_a_refund_that_breaks_a_rule(
    db: asyncpg.Connection, amount: Decimal, reason: str
) -> None:
    payment_id = await insert_payment(db, status="REFUNDED")
    with pytest.raises(asyncpg.CheckViolationError):
        await checks.insert_refund_row(db, payment_id=payment_id, amount=amount, reason=reason)


async def test_the_schema_stores_amounts_exactly(db: asyncpg.Connection) -> None:
    payment_id = await insert_payment(db, amount=Decimal(999_999))
    row = await find_payment(db, payment_id)
    assert row["amount"] == Decimal(999_999)
    assert isinstance(row["amount"], Decimal)
