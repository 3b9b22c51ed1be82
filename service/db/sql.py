"""The SQL of `sql/`, loaded once with aiosql; Python never holds SQL text."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import aiosql

from service.db.aiosql_adapter import LeanAsyncPGAdapter

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "sql"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


@cache
def load_queries() -> Any:
    """Every named query of `sql/*.sql`, by name (`queries.settle_payment(conn, ...)`).

    Typed `Any` because aiosql builds the methods at run time.
    """
    adapter: Any = LeanAsyncPGAdapter  # aiosql's protocol type does not fit a subclass
    return aiosql.from_path(SQL_DIR, adapter)
