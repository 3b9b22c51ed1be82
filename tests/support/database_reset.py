"""A test's database made fresh again by emptying its tables, instead of a new copy.

CREATE DATABASE ... TEMPLATE writes the whole template again (8 MB, 60 to 300 ms of
the server's time) and DROP DATABASE removes it; emptying the tables of a database the
last test used takes about a millisecond. Whatever emptying tables cannot undo (DDL, a
changed row of a table the migrations filled, a moved sequence) shows in a fingerprint
of the catalogs and of those rows, and such a database is dropped and replaced by a
copy as before.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import asyncpg

from tests.support.sql import load_test_queries

queries: Any = load_test_queries()
# A session that a test left holding a lock must not hold the next test up for long.
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class FreshState:
    """What a fresh copy of a template looks like: the tables it holds no rows in
    (which a reset empties) and the fingerprint of everything else."""

    empty_tables: list[str]
    filled_tables: list[str]
    fingerprint: tuple[str, list[tuple[str, str]]]


async def _rows(connection: asyncpg.Connection, tables: list[str]) -> list[asyncpg.Record]:
    """Each table's name, number of rows and their checksum."""
    if not tables:
        return []
    statement: str = await queries.rows_statement(connection, tables=tables)
    return list(await connection.fetch(statement))


async def _fingerprint(
    connection: asyncpg.Connection, filled_tables: list[str]
) -> tuple[str, list[tuple[str, str]]]:
    catalogs = await queries.catalog_fingerprint(connection)
    rows = [(row["name"], row["checksum"]) for row in await _rows(connection, filled_tables)]
    return catalogs, rows


async def fresh_state(url: str) -> FreshState:
    """The state of the database at `url`, a fresh copy that no test has used yet."""
    connection = await asyncpg.connect(url)
    try:
        tables = [row["name"] async for row in queries.tables(connection)]
        counts = {row["name"]: row["row_count"] for row in await _rows(connection, tables)}
        empty = [name for name in tables if counts[name] == 0]
        filled = [name for name in tables if counts[name] > 0]
        return FreshState(empty, filled, await _fingerprint(connection, filled))
    finally:
        await connection.close()


async def reset(url: str, fresh: FreshState) -> bool:
    """Empty the tables of the database at `url` and end its other sessions; whether it
    is now as fresh as a new copy (False: it is not, and must be replaced)."""
    try:
        connection = await asyncpg.connect(url, server_settings={"lock_timeout": LOCK_TIMEOUT})
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        await queries.terminate_other_sessions(connection)
        if fresh.empty_tables:
            statement = await queries.empty_statement(connection, tables=fresh.empty_tables)
            await connection.execute(statement)
        return await _fingerprint(connection, fresh.filled_tables) == fresh.fingerprint
    except (OSError, asyncpg.PostgresError):
        return False
    finally:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await connection.close()
