"""Schema migrations: `migrations/NNNN_name.sql`, applied in order, each once.

All pending files apply in one transaction under an advisory lock, so
simultaneous starts of several processes are safe and a failed migration
leaves nothing half-applied.

The lock is a transaction-level one (pg_advisory_xact_lock), so it would hold
even through a transaction pooler, which may run each transaction on another
server session. Callers still pass the direct URL ([database] direct_url): a
migration's DDL may wait long for its locks and should not hold one of the
pooler's few server connections, nor meet its query_timeout, meanwhile.
"""

from __future__ import annotations

import logging
from fnmatch import fnmatch
from importlib.resources.abc import Traversable
from pathlib import PurePath

import asyncpg

from service.db.sql import MIGRATIONS_DIR, load_queries

log = logging.getLogger(__name__)


class MigrationError(Exception):
    """The migrations on disk do not fit the ones applied."""


def migration_files(directory: Traversable = MIGRATIONS_DIR) -> list[Traversable]:
    """The migration files, in the order they apply (read as package resources)."""
    found = [f for f in directory.iterdir() if fnmatch(f.name, "[0-9][0-9][0-9][0-9]_*.sql")]
    return sorted(found, key=lambda file: file.name)


async def apply_migrations(connection: asyncpg.Connection) -> list[str]:
    """Apply the pending migrations; return the versions applied now."""
    queries = load_queries()
    applied_now: list[str] = []
    async with connection.transaction():
        await queries.lock_migrations(connection)
        await queries.create_migrations_table(connection)
        done = {row["version"] async for row in queries.applied_migrations(connection)}
        latest = max(done, default="")
        for path in migration_files():
            version = PurePath(path.name).stem
            if version in done:
                continue
            if version < latest:
                # Applying it now would run it after changes that were meant to follow it.
                raise MigrationError(f"{version} is older than the applied {latest}")
            await connection.execute(path.read_text(encoding="utf-8"))
            await queries.record_migration(connection, version=version)
            applied_now.append(version)
    for version in applied_now:
        log.info("applied migration %s", version)
    return applied_now


async def migrate(url: str) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        return await apply_migrations(connection)
    finally:
        await connection.close()
