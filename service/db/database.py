"""What every reader and writer of a process shares: built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from service.db.pool import BoundedPool
from service.db.queries import Queries


@dataclass(frozen=True, slots=True)
class Database:
    """The connection pool and the loaded SQL of `sql/`."""

    pool: BoundedPool
    queries: Queries
