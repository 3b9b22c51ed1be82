"""`service.db.queries.Queries` is the typed face of `sql/`: it must name exactly the
queries aiosql loads, with exactly their parameters, or mypy checks calls against a
fiction."""

from __future__ import annotations

import inspect
import uuid
from typing import Any

import asyncpg

from service.db.queries import Queries
from service.db.sql import load_queries

OPERATORS_PREFIX = "ops_"  # run by name by `payments ops`, not through Queries


def loaded() -> dict[str, tuple[str, ...]]:
    queries: Any = load_queries()
    names = set(queries.available_queries)
    return {
        name: tuple(getattr(queries, name).parameters or ())
        for name in names
        if not name.startswith(OPERATORS_PREFIX)
        and not (name.endswith("_cursor") and name.removesuffix("_cursor") in names)
    }


def declared() -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for name, member in inspect.getmembers(Queries, inspect.isfunction):
        if name.startswith("_"):
            continue
        parameters = list(inspect.signature(member).parameters)
        assert parameters[:2] == ["self", "conn"], f"{name}: (self, conn, *, ...) expected"
        found[name] = tuple(parameters[2:])
    return found


def test_queries_declares_every_loaded_query_and_nothing_else() -> None:
    assert sorted(declared()) == sorted(loaded())


def test_each_declared_query_takes_exactly_the_sql_parameters() -> None:
    sql = loaded()
    mismatched = {
        name: (params, sql[name])
        for name, params in declared().items()
        if name in sql and sorted(params) != sorted(sql[name])
    }
    assert mismatched == {}


async def test_keyword_parameters_reach_the_statement_in_their_places(database_url: str) -> None:
    # Given in another order than the SQL names them: aiosql binds each to its own $n.
    queries = load_queries()
    connection = await asyncpg.connect(database_url)
    try:
        settled = await queries.settle_payment(
            connection,
            request_id="r",
            from_statuses=["PROCESSING"],
            status="COMPLETED",
            failure_message=None,
            transaction_id=uuid.uuid4(),
            failure_code=None,
            payment_id=1,
        )
        rows = queries.insert_processing_many(
            connection, currencies=["JPY"], amounts=[1234], order_ids=[77]
        )
        [row] = [row async for row in rows]
    finally:
        await connection.close()
    assert settled is None  # no payment 1 yet: nothing settled, nothing raised
    assert (row["order_id"], row["amount"], row["currency"]) == (77, 1234, "JPY")
