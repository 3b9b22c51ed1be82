"""`service.db.queries.Queries` is the typed face of `sql/`: it must name exactly the
queries aiosql loads, with exactly their parameters, or mypy checks calls against a
fiction."""

from __future__ import annotations

import inspect
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
    # Two text arrays side by side (codes, messages) show a swap as a wrong value.
    queries = load_queries()
    connection = await asyncpg.connect(database_url)
    try:
        rows = queries.insert_processing_many(
            connection, items='[{"payment": {"order_id": 77, "amount": 1234, "currency": "JPY"}}]'
        )
        [row] = [row async for row in rows]
        settled = queries.settle_payments(
            connection,
            request_ids=["r"],
            from_statuses=["PROCESSING"],
            failure_messages=["the message"],
            statuses=["FAILED"],
            transaction_ids=[row["transaction_id"]],
            failure_codes=["the_code"],
            next_actions=[None],
            payment_ids=[row["id"]],
            gateway_references=["the_reference"],
        )
        [failed] = [payment async for payment in settled]
    finally:
        await connection.close()
    assert (row["order_id"], row["amount"], row["currency"]) == (77, 1234, "JPY")
    assert (failed["status"], failed["failure_code"], failed["failure_message"]) == (
        "FAILED",
        "the_code",
        "the message",
    )
    assert failed["request_id"] == "r"
    assert failed["gateway_reference"] == "the_reference"
