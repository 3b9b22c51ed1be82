"""The SQL of `sql/`, loaded once with aiosql; Python never holds SQL text."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, cast

import aiosql

from service.db.aiosql_adapter import LeanAsyncPGAdapter
from service.db.queries import Queries

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "sql"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


@cache
def load_queries() -> Queries:
    """Every named query of `sql/*.sql`, by name (`queries.settle_payment(conn, ...)`).

    Loaded once per process by its entry point (the app's lifespan, a CLI command)
    and passed to whatever runs them. aiosql builds the methods at run time;
    `Queries` is their checked, typed face.
    """
    adapter: Any = LeanAsyncPGAdapter  # aiosql's protocol type does not fit a subclass
    return cast(Queries, aiosql.from_path(SQL_DIR, adapter))
