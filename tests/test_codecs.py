"""New connections bind and decode arrays of built-in types without a type
introspection query (service/db/codecs.py leans on asyncpg internals: an
upgrade that changes them must fail here, not slow every new connection again), and
read and write JSON as the values it holds."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from service.db.codecs import BUILTIN_ARRAYS, prepare_connection, register_builtin_arrays
from service.db.pool import connect, create_pool
from service.settings import DatabaseSettings

# One value of each array type, and the statement that sends it and reads it back.
VALUES: dict[str, list[Any]] = {
    "boolean[]": [True, False],
    "int4[]": [1, -2],
    "bigint[]": [9_007_199_254_740_993, 1],
    "float8[]": [0.5, 2.25],
    "timestamptz[]": [dt.datetime(2026, 11, 30, 7, 0, tzinfo=dt.UTC)],
    "numeric[]": [Decimal("1.10"), Decimal("99999999999999999999.5")],
    "uuid[]": [uuid.UUID(int=1), uuid.UUID(int=2**128 - 1)],
}


async def introspections(connection: asyncpg.Connection, sql_type: str) -> list[str]:
    """The statements the connection ran to send and read back one array of the type."""
    seen: list[str] = []
    connection.add_query_logger(lambda logged: seen.append(logged.query))
    assert await connection.fetchval(f"SELECT $1::{sql_type}", VALUES[sql_type]) == VALUES[sql_type]
    return [query for query in seen if "typeinfo" in query]


def test_the_types_are_postgresqls_own() -> None:
    assert set(BUILTIN_ARRAYS) == {1000, 1007, 1016, 1022, 1185, 1231, 2951}


@pytest.mark.parametrize("sql_type", VALUES)
async def test_a_registered_connection_asks_nothing_about_an_array_type(
    database_url: str, sql_type: str
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await register_builtin_arrays(connection)
        assert await introspections(connection, sql_type) == []
    finally:
        await connection.close()


async def test_without_them_the_connection_would_ask(database_url: str) -> None:
    # The check above can fail: an unregistered connection does introspect.
    connection = await asyncpg.connect(database_url)
    try:
        assert len(await introspections(connection, "uuid[]")) == 1
    finally:
        await connection.close()


async def test_the_pool_and_the_cli_connections_are_registered(database_url: str) -> None:
    settings = DatabaseSettings(url=database_url, pool_min_size=1, pool_max_size=1)
    pool = await create_pool(database_url, settings)
    try:
        async with pool.connection() as pooled:
            assert await introspections(pooled, "numeric[]") == []
    finally:
        await pool.close()
    connection = await connect(database_url, settings)
    try:
        assert await introspections(connection, "bigint[]") == []
    finally:
        await connection.close()


async def test_json_comes_and_goes_as_the_values_it_holds(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await prepare_connection(connection)
        value = {"a": [1, "x", None], "b": {"c": True}}
        assert await connection.fetchval("SELECT $1::jsonb", value) == value
        # Fractions come back exact, as numeric holds them: never a binary float.
        exact = await connection.fetchval("SELECT json_build_object('k', 0.1)")
        assert exact == {"k": Decimal("0.1")} and isinstance(exact["k"], Decimal)
        assert await connection.fetchval("SELECT $1::jsonb", {"a": Decimal("1.10")}) == {
            "a": Decimal("1.10")
        }
        assert await introspections(connection, "uuid[]") == []
    finally:
        await connection.close()
