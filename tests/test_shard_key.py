"""The README's sharding plan, checked against the SQL: every statement the service runs
(every named query of sql/, the operators' ops_* included) names the shard key `order_id`,
or is listed in the plan (README.md, "### Sharding (plan)") with the route it takes.

A statement names the shard key when the caller must give it an `order_id` (or
`order_ids`): a parameter the SQL may ignore (`:order_id IS NULL`, "any order") does
not count, since then the statement runs on every shard.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import as_file
from typing import Any

import aiosql

from service.db.sql import SQL_DIR, load_queries
from tests.support.paths import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
HEADING = "### Sharding (plan)"
# insert_processing_many's `items`: each is a payment with its order_id, routed by it.
SHARD_KEY_PARAMETERS = {"order_id", "order_ids", "items"}
# `:order_id IS NULL` or `CAST(:order_id AS bigint) IS NULL`: the key is optional there.
OPTIONAL_KEY = re.compile(r":order_ids?\b(?:\s+AS\s+\w+(?:\[\])?\))?\s+IS\s+NULL", re.IGNORECASE)
# One entry of the plan's list: `- **Route**: ...`, continued on indented lines.
ENTRY = re.compile(r"^- \*\*.*?(?=^\S|\Z)", re.MULTILINE | re.DOTALL)


def statements() -> dict[str, Any]:
    """Every named query the service loads (aiosql's `_cursor` twins left out), by name."""
    queries: Any = load_queries()
    names = set(queries.available_queries)
    return {
        name: getattr(queries, name)
        for name in names
        if not (name.endswith("_cursor") and name.removesuffix("_cursor") in names)
    }


@cache
def written_sql() -> Any:
    """The same queries with their SQL as written: the asyncpg adapter turns `:name`
    into `$1`, while aiosql's sqlite3 adapter (loaded, never connected) keeps it."""
    with as_file(SQL_DIR) as directory:
        return aiosql.from_path(directory, "sqlite3")


def names_shard_key(name: str) -> bool:
    statement = getattr(written_sql(), name)
    parameters = set(statement.parameters or ())
    return bool(parameters & SHARD_KEY_PARAMETERS) and not OPTIONAL_KEY.search(statement.sql)


def planned_routes() -> dict[str, list[str]]:
    """The plan's list: each statement the plan routes by hand, with its entries' titles."""
    text = README.read_text(encoding="utf-8")
    assert HEADING in text, f"README.md has no {HEADING!r} section"
    section = text.split(HEADING, 1)[1]
    section = re.split(r"^#{1,3} ", section, maxsplit=1, flags=re.MULTILINE)[0]
    routes: dict[str, list[str]] = {}
    for entry in ENTRY.findall(section):
        title = entry.split("**")[1]
        for name in re.findall(r"`(\w+)`", entry):
            routes.setdefault(name, []).append(title)
    assert routes, f"README.md's {HEADING!r} lists no statement"
    return routes


def test_every_statement_names_the_shard_key_or_is_routed_by_the_plan() -> None:
    loaded = statements()
    routes = planned_routes()
    unrouted = sorted(n for n in loaded if not names_shard_key(n) and n not in routes)
    assert not unrouted, (
        f"statements of sql/ that do not name order_id and that README.md's {HEADING!r} "
        f"does not route; add each to the entry of the route it takes: {', '.join(unrouted)}"
    )


def test_the_plan_names_only_statements_that_exist() -> None:
    gone = sorted(set(planned_routes()) - set(statements()))
    assert not gone, (
        f"README.md's {HEADING!r} lists statements that sql/ no longer has; "
        f"remove (or rename) them: {', '.join(gone)}"
    )


def test_the_plan_routes_each_statement_once_and_none_that_names_order_id() -> None:
    loaded = statements()
    twice = sorted(name for name, titles in planned_routes().items() if len(titles) > 1)
    assert not twice, f"README.md's {HEADING!r} lists these under two routes: {', '.join(twice)}"
    keyed = sorted(n for n in planned_routes() if n in loaded and names_shard_key(n))
    assert not keyed, (
        f"these name order_id, so they route by it; remove them from README.md's "
        f"{HEADING!r}: {', '.join(keyed)}"
    )


def test_statements_that_name_order_id_are_recognised() -> None:
    """The rule itself, on statements whose routing is known."""
    assert names_shard_key("payment_by_order")
    assert names_shard_key("insert_processing_many")  # a row per order, each routed
    assert not names_shard_key("payment_by_id")  # by payment id: not the key
    assert not names_shard_key("replay_dead_events")  # order_id optional: a scan
