"""Schema migrations: `migrations/NNNN_name.sql`, applied in order, each once, on a
database that serves payments meanwhile.

- Each migration runs in a transaction of its own, which records it in
  schema_migrations: one that fails leaves nothing of itself behind, and the ones
  before it stay applied.
- No migration makes the service's queries wait for long. A statement waiting for a
  lock (because some idle transaction holds one it conflicts with) makes every later
  request for a conflicting lock wait behind it: ALTER TABLE payments waiting behind
  one idle session stops every payment. So each statement waits at most
  `[database] migration_lock_timeout_seconds` for a lock (lock_timeout, SET LOCAL);
  the migration is then rolled back, which lets the waiting queries through, and
  tried again after a pause that doubles each time, TRIES times in all. After the
  last, MigrationError names it and the sessions that held up its locks.
- A file whose first line is NO_TRANSACTION runs outside a transaction, one statement
  at a time: CREATE INDEX CONCURRENTLY cannot run inside one, and builds an index while
  the table takes writes. Each statement must be safe to run again (IF NOT EXISTS):
  a retry, or the next run after a failure, runs the file again. An index a failed
  build left INVALID, which IF NOT EXISTS would take for done, is dropped first. The
  file is recorded once its last statement has run.
- Migrators are serialised by a session-level advisory lock held across those
  transactions, so simultaneous starts are safe; the others ask for it again every
  LOCK_POLL_SECONDS rather than wait in a statement, which CREATE INDEX CONCURRENTLY
  would wait for in turn. It takes a session of its own: callers pass the direct URL
  ([database] direct_url), never a transaction pooler's, which may run the next
  transaction on another server session (and a migration waiting for its locks should
  not hold one of the pooler's few server connections).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from fnmatch import fnmatch
from functools import partial
from importlib.resources.abc import Traversable
from pathlib import PurePath

import asyncpg

from service.db.queries import Queries
from service.db.sql import MIGRATIONS_DIR, load_queries
from service.settings import MIGRATION_LOCK_TIMEOUT_SECONDS

log = logging.getLogger(__name__)

# How often a migrator asks again for the lock another migrator holds.
LOCK_POLL_SECONDS = 0.2
# The first line of a migration whose statements must run outside a transaction.
NO_TRANSACTION = "-- migrate: no-transaction"
# Tries per migration (or per statement of a NO_TRANSACTION file) that cannot get a lock.
TRIES = 5
# A statement that gave up waiting for a lock: lock_timeout, or a deadlock with the
# queries of the service, whose victim may as well be the migration.
LOCK_WAITS = (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError)

# The pieces of SQL text a `;` inside does not end: comments, quoted strings and
# identifiers, dollar-quoted bodies; then the `;` that ends a statement, and the rest.
_SQL_TOKEN = re.compile(
    r"""(?P<comment>--[^\n]*|/\*.*?\*/)
      | (?P<quoted>'(?:[^']|'')*'|"(?:[^"]|"")*"|(?P<tag>\$[A-Za-z_]\w*\$|\$\$).*?(?P=tag))
      | (?P<end>;)
      | [^-/'"$;]+|.""",
    re.DOTALL | re.VERBOSE,
)
_BUILDS_INDEX_CONCURRENTLY = re.compile(
    r"""\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?
        (?P<name>(?:"(?:[^"]|"")+"|\w+)(?:\.(?:"(?:[^"]|"")+"|\w+))?)""",
    re.IGNORECASE | re.VERBOSE,
)


class MigrationError(Exception):
    """The migrations on disk do not fit the ones applied, or one never got its locks."""


def migration_files(directory: Traversable = MIGRATIONS_DIR) -> list[Traversable]:
    """The migration files, in the order they apply (read as package resources)."""
    found = [f for f in directory.iterdir() if fnmatch(f.name, "[0-9][0-9][0-9][0-9]_*.sql")]
    return sorted(found, key=lambda file: file.name)


def pause_after(tried: int, lock_timeout: float) -> float:
    """Seconds between failed try `tried` (from 1) and the next: a quarter of the
    lock timeout, doubling (0.5, 1, 2, 4 s for 2 s), long enough for the queries that
    queued behind the migration to get through, and for a short transaction to end."""
    return lock_timeout / 4 * 2.0 ** (tried - 1)


def statements_of(text: str) -> list[str]:
    """The statements of a SQL file, without its comments, each without its `;`. Quotes
    are standard SQL's ('it''s'); a backslash escape of an E'' string is not understood."""
    statements: list[str] = []
    current: list[str] = []
    for token in _SQL_TOKEN.finditer(text):
        if token["end"]:
            statements.append("".join(current).strip())
            current = []
        else:
            # A comment parts what it stands between, as a blank does.
            current.append(" " if token["comment"] else token[0])
    statements.append("".join(current).strip())
    return [statement for statement in statements if statement]


async def migrate(
    url: str,
    *,
    lock_timeout: float = MIGRATION_LOCK_TIMEOUT_SECONDS,
    directory: Traversable = MIGRATIONS_DIR,
) -> list[str]:
    """Apply the pending migrations of `directory`; return the versions applied now."""
    connection = await asyncpg.connect(url)
    try:
        return await apply_migrations(connection, lock_timeout=lock_timeout, directory=directory)
    finally:
        await connection.close()


async def apply_migrations(
    connection: asyncpg.Connection,
    *,
    lock_timeout: float = MIGRATION_LOCK_TIMEOUT_SECONDS,
    directory: Traversable = MIGRATIONS_DIR,
) -> list[str]:
    """Apply the pending migrations on this (direct) connection; return their versions."""
    queries = load_queries()
    applied_now: list[str] = []
    # A poll, not an asyncio.Event: the lock's other holders are other processes.
    while True:
        if await queries.try_lock_migrations(connection):
            break
        await asyncio.sleep(LOCK_POLL_SECONDS)
    try:
        await queries.create_migrations_table(connection)
        done = {row["version"] async for row in queries.applied_migrations(connection)}
        latest = max(done, default="")
        for path in migration_files(directory):
            version = PurePath(path.name).stem
            if version in done:
                continue
            if version < latest:
                # Applying it now would run it after changes that were meant to follow it.
                raise MigrationError(f"{version} is older than the applied {latest}")
            runner = _Runner(connection, queries, version, lock_timeout)
            await runner.apply(path.read_text(encoding="utf-8"))
            log.info("applied migration %s", version)
            applied_now.append(version)
    finally:
        if not connection.is_closed():
            await queries.unlock_migrations(connection)
    return applied_now


class _Runner:
    """One migration, applied with bounded lock waits."""

    def __init__(
        self, connection: asyncpg.Connection, queries: Queries, version: str, lock_timeout: float
    ) -> None:
        self.connection = connection
        self.queries = queries
        self.version = version
        self.lock_timeout = lock_timeout
        self.milliseconds = max(1, round(lock_timeout * 1000))

    async def apply(self, text: str) -> None:
        if text.startswith(NO_TRANSACTION):
            await self._apply_outside_a_transaction(text)
        else:
            await self._patiently(lambda: self._apply_in_a_transaction(text), in_transaction=True)

    async def _apply_in_a_transaction(self, text: str) -> None:
        async with self.connection.transaction():
            await self.queries.limit_lock_waits(
                self.connection, milliseconds=self.milliseconds, transaction_only=True
            )
            await self.connection.execute(text)
            await self.queries.record_migration(self.connection, version=self.version)

    async def _apply_outside_a_transaction(self, text: str) -> None:
        await self.queries.limit_lock_waits(
            self.connection, milliseconds=self.milliseconds, transaction_only=False
        )
        try:
            for statement in statements_of(text):
                await self._patiently(partial(self._run_alone, statement), in_transaction=False)
        finally:
            if not self.connection.is_closed():
                await self.queries.unlimit_lock_waits(self.connection)
        await self.queries.record_migration(self.connection, version=self.version)

    async def _run_alone(self, statement: str) -> None:
        built = _BUILDS_INDEX_CONCURRENTLY.match(statement)
        if built is not None:
            drop = await self.queries.invalid_index_drop(self.connection, index_name=built["name"])
            if drop is not None:
                log.warning(
                    "migration %s: index %s is INVALID (an earlier build failed): "
                    "dropping it to build it again",
                    self.version,
                    built["name"],
                )
                await self.connection.execute(drop)
        await self.connection.execute(statement)

    async def _patiently(
        self, apply: Callable[[], Awaitable[None]], *, in_transaction: bool
    ) -> None:
        """Run `apply`; when it gives up waiting for a lock, pause and run it again, up
        to TRIES times, then fail naming what it waited for."""
        last: Exception | None = None
        for number in range(1, TRIES + 1):
            try:
                await apply()
                return
            except LOCK_WAITS as exc:
                last = exc
                log.warning(
                    "migration %s gave up waiting for a lock after %g s (try %d of %d): %s",
                    self.version,
                    self.lock_timeout,
                    number,
                    TRIES,
                    exc,
                )
                if number < TRIES:
                    await asyncio.sleep(pause_after(number, self.lock_timeout))
        raise MigrationError(await self._explain(last, in_transaction)) from last

    async def _explain(self, exc: Exception | None, in_transaction: bool) -> str:
        holders = [
            row
            async for row in self.queries.long_transactions(
                self.connection, older_than_seconds=self.lock_timeout
            )
        ]
        if holders:
            sessions = "; ".join(
                f"pid {row['pid']} ({row['state']} for {row['seconds']:.0f} s"
                f"{', ' + row['application_name'] if row['application_name'] else ''}"
                f"{', holding ' + row['locks'] if row['locks'] else ''}; "
                f"last statement: {row['query']!r})"
                for row in holders
            )
            culprits = (
                f"It waited behind one of these sessions, each in a transaction for longer "
                f"than that: {sessions}."
            )
        else:
            culprits = "The sessions that held it have ended since."
        outcome = (
            "nothing of it is applied"
            if in_transaction
            else "it is not recorded, and its statements run again next time"
        )
        return (
            f"migration {self.version} gave up: {TRIES} times it waited "
            f"{self.lock_timeout:g} s (migration_lock_timeout_seconds) for a lock that "
            f"another session held ({exc}); {outcome}. {culprits} Let them end (or end "
            f"them), then migrate again."
        )
