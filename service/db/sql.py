"""The SQL of `sql/`, loaded once with aiosql; Python never holds SQL text."""

from __future__ import annotations

from functools import cache
from importlib.resources import as_file, files
from typing import Any, cast

import aiosql

from service.db.aiosql_adapter import LeanAsyncPGAdapter
from service.db.queries import Queries

# sql/ and migrations/ of the repository ship in the wheel as these resource packages.
SQL_DIR = files("service.sql")
MIGRATIONS_DIR = files("service.migrations")


@cache
def load_queries() -> Queries:
    """Every named query of `sql/*.sql`, by name (`queries.settle_payment(conn, ...)`).

    Loaded once per process by its entry point (the app's lifespan, a CLI command)
    and passed to whatever runs them. aiosql builds the methods at run time;
    `Queries` is their checked, typed face.
    """
    adapter: Any = LeanAsyncPGAdapter  # aiosql's protocol type does not fit a subclass
    # A directory on disk in an editable and a wheel install alike: as_file hands it over as is.
    with as_file(SQL_DIR) as directory:
        return cast(Queries, aiosql.from_path(directory, adapter))
