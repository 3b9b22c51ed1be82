"""A test's database made fresh again by emptying its tables, instead of a new copy.

CREATE DATABASE ... TEMPLATE writes the whole template again (8 MB, 60 to 300 ms of
the server's time) and DROP DATABASE removes it; emptying the tables of a database the
last test used takes about a millisecond. Whatever emptying tables cannot undo shows
in a fingerprint: DDL (counted by an event trigger the template carries), a moved
sequence, a database setting, a changed row of a table the migrations filled. Such a
database is dropped and replaced by a copy as before, and so is every database on a
server where the tests may not create event triggers.
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


async def count_ddl(template_url: str) -> bool:
    """Give the template the DDL counter its copies are judged by; whether the server
    allowed it (event triggers need a superuser)."""
    connection = await asyncpg.connect(template_url)
    try:
        await queries.count_ddl(connection)
        return True
    except asyncpg.InsufficientPrivilegeError:
        return False
    finally:
        await connection.close()


@dataclass(frozen=True)
class FreshState:
    """What a fresh copy of a template looks like: the statements that empty the tables
    it holds no rows in, and the fingerprint of everything else."""

    empty_statement: str
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
    rest = await queries.fingerprint(connection)
    rows = [(row["name"], row["checksum"]) for row in await _rows(connection, filled_tables)]
    return rest, rows


async def fresh_state(url: str) -> FreshState:
    """The state of the database at `url`, a fresh copy that no test has used yet."""
    connection = await asyncpg.connect(url)
    try:
        tables = [row["name"] async for row in queries.tables(connection)]
        counts = {row["name"]: row["row_count"] for row in await _rows(connection, tables)}
        empty = [name for name in tables if counts[name] == 0]
        filled = [name for name in tables if counts[name] > 0]
        statement = await queries.empty_statement(connection, tables=empty) if empty else ""
        return FreshState(statement, filled, await _fingerprint(connection, filled))
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
        if fresh.empty_statement:
            await connection.execute(fresh.empty_statement)
        return await _fingerprint(connection, fresh.filled_tables) == fresh.fingerprint
    except (OSError, asyncpg.PostgresError):
        return False
    finally:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await connection.close()
