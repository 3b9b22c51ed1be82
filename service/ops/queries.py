"""The operators' named queries (`ops_*` of sql/ops.sql): found, run, returned as rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

from service.db.pool import connect
from service.db.sql import load_queries
from service.settings import DatabaseSettings

PREFIX = "ops_"
Shape = Literal["rows", "row", "value"]
# aiosql's operation types that do not return rows.
_SHAPES: dict[str, Shape] = {"SELECT_ONE": "row", "SELECT_VALUE": "value"}


@dataclass(frozen=True)
class OpsQuery:
    name: str
    parameters: tuple[str, ...]
    # The comment line under `-- name:`: the question the query answers.
    question: str
    shape: Shape


@dataclass(frozen=True)
class OpsResult:
    query: OpsQuery
    columns: list[str]
    rows: list[tuple[Any, ...]]


def ops_queries() -> dict[str, OpsQuery]:
    """Every `ops_*` query aiosql loaded, by name (aiosql's `_cursor` twins left out)."""
    # Operators choose these by name at run time, so they are looked up by name.
    queries: Any = load_queries()
    names = set(queries.available_queries)
    found: dict[str, OpsQuery] = {}
    for name in sorted(names):
        if not name.startswith(PREFIX):
            continue
        if name.endswith("_cursor") and name.removesuffix("_cursor") in names:
            continue
        method = getattr(queries, name)
        found[name] = OpsQuery(
            name=name,
            parameters=tuple(method.parameters or ()),
            question=" ".join((method.__doc__ or "").split()),
            shape=_SHAPES.get(method.operation.name, "rows"),
        )
    return found


def find_query(name: str) -> OpsQuery | None:
    """A query by its name, with or without the `ops_` prefix."""
    queries = ops_queries()
    return queries.get(name) or queries.get(PREFIX + name)


async def run_query(
    url: str, query: OpsQuery, params: dict[str, Any], database: DatabaseSettings
) -> OpsResult:
    connection = await connect(url, database, server_settings={"application_name": "payments ops"})
    try:
        # Read-only by construction: an ops query never changes anything.
        async with connection.transaction(readonly=True):
            method = getattr(cast(Any, load_queries()), query.name)
            if query.shape == "rows":  # aiosql yields these rows one by one
                records = [record async for record in method(connection, **params)]
            else:
                answer = await method(connection, **params)
                records = [] if answer is None else [answer]
    finally:
        await connection.close()
    if query.shape == "value":
        return OpsResult(query, [query.name], [(value,) for value in records])
    columns = list(records[0].keys()) if records else []
    return OpsResult(query, columns, [tuple(record.values()) for record in records])
