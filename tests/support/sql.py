"""The tests' own SQL (`tests/sql/*.sql`): checks of the stored state and writes that set
one up by hand. The service never loads it; its own queries stay `service.db.sql.load_queries()`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import aiosql

TEST_SQL_DIR = Path(__file__).resolve().parents[1] / "sql"


@cache
def load_test_queries() -> Any:
    """Every named query of `tests/sql/*.sql`, by name (`checks.count_payments(conn)`).

    Typed `Any` because aiosql builds the methods at run time.
    """
    return aiosql.from_path(TEST_SQL_DIR, "asyncpg")
