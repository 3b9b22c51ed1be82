"""The PostgreSQL server the tests use, and a fresh database per test.

By default an embedded server (pgserver) in a directory of this run's own;
PAYMENTS_TEST_DATABASE_URL points at an existing server instead (its user must
be allowed to create databases); PAYMENTS_TEST_TESTCONTAINERS=1 starts one in
Docker with testcontainers.

Databases are created and dropped with SQL over one admin connection (no
createdb/dropdb process per test), on a thread of its own so that both the
synchronous and the asynchronous fixtures can use it. A test's database is emptied
for a later test once it is done (tests/support/database_reset.py), and the next one
is made ready while the current test runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.support.database_reset import FreshState, count_ddl, fresh_state, reset

_counter = itertools.count(1)
# URLs of the copies of the migrated template handed to tests: a service started on
# one need not migrate it again (tests/support/settings.py).
MIGRATED_URLS: set[str] = set()
T = TypeVar("T")

# The embedded server is thrown away after the run: its data need not survive a
# power cut, and without a flush per commit a database copy is cheap to drop.
THROWAWAY_SERVER = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}


def with_database(url: str, database: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def before_workers_start() -> None:
    """As root, pgserver runs PostgreSQL as a user of its own, which it creates on first
    use with `useradd`: on a new machine, test processes starting together (pytest -n)
    would race to create it, and the loser's server failed to start. Made once, here."""
    embedded = not (
        os.environ.get("PAYMENTS_TEST_DATABASE_URL")
        or os.environ.get("PAYMENTS_TEST_TESTCONTAINERS") == "1"
    )
    if embedded and hasattr(os, "geteuid") and os.geteuid() == 0:
        from pgserver.utils import ensure_user_exists

        ensure_user_exists("pgserver")


class TestPostgres:
    __test__ = False  # not a test class, despite the name

    def __init__(self) -> None:
        self._cleanups: list[object] = []
        self._tmp: str | None = None
        self.data_dir: Path | None = None  # the embedded server's, if it is one
        embedded = False
        if url := os.environ.get("PAYMENTS_TEST_DATABASE_URL"):
            self.admin_url = url
        elif os.environ.get("PAYMENTS_TEST_TESTCONTAINERS") == "1":
            from testcontainers.community.postgres import PostgresContainer

            container = PostgresContainer("postgres:16-alpine", driver=None).start()
            self._cleanups.append(container.stop)
            self.admin_url = container.get_connection_url()
        else:
            import pgserver

            # A directory of this run's own: pgserver shares one server per
            # directory, and a killed run must not leave one to the next.
            self._tmp = tempfile.mkdtemp(prefix="payments-test-pg-")
            self.data_dir = Path(self._tmp) / "pgdata"
            server = pgserver.get_server(self.data_dir, cleanup_mode="delete")
            self._cleanups.append(server.cleanup)
            self.admin_url = server.get_uri("postgres")
            embedded = True
        self.prefix = f"pt{os.getpid()}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="test-postgres-admin", daemon=True
        )
        self._thread.start()
        self._admin: asyncpg.Pool = self._call(self._open(tune=embedded))
        # Databases ready for the next tests, by template, and what a fresh one looks like.
        self._ready: dict[str, list[Future[str]]] = {}
        self._fresh: dict[str, FreshState] = {}
        # Templates whose copies count their DDL, and so may be emptied and reused.
        self._reusable: set[str] = set()
        self.reused = self.replaced = 0

    async def _open(self, *, tune: bool) -> asyncpg.Pool:
        # Two connections: a copy for the next test is made while a drop runs.
        pool = await asyncpg.create_pool(self.admin_url, min_size=1, max_size=2)
        if tune:
            for name, value in THROWAWAY_SERVER.items():
                await pool.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            await pool.execute("SELECT pg_reload_conf()")
        return pool

    def _submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._submit(coroutine).result(120)

    async def _create(self, name: str, template: str | None) -> str:
        copy = f' TEMPLATE "{template}"' if template else ""
        await self._admin.execute(f'CREATE DATABASE "{name}"{copy}')
        return name

    def _next_name(self) -> str:
        return f"{self.prefix}_{next(_counter)}"

    def create_database(self, template: str | None = None) -> tuple[str, str]:
        """Create a database (a copy of `template` if given); return its name and URL."""
        name = self._call(self._create(self._next_name(), template))
        return name, with_database(self.admin_url, name)

    def make_reusable(self, template: str) -> None:
        """Let copies of `template` be emptied for later tests rather than dropped (see
        tests/support/database_reset.py), if the server lets them count their DDL."""
        if self._call(count_ddl(with_database(self.admin_url, template))):
            self._reusable.add(template)

    async def copy_of(self, template: str) -> tuple[str, str]:
        """A database as fresh as a new copy of `template`, its name and URL: one a
        previous test gave back, or a copy made ahead of time. A next one is always
        on its way, to be ready for the next test."""
        queue = self._ready.setdefault(template, [])
        ready = queue.pop(0) if queue else self._submit(self._create(self._next_name(), template))
        if not queue:
            queue.append(self._submit(self._create(self._next_name(), template)))
        name = await asyncio.wrap_future(ready)
        url = with_database(self.admin_url, name)
        MIGRATED_URLS.add(url)
        if template not in self._fresh:  # learnt from the first copy, before any test uses it
            self._fresh[template] = await asyncio.wrap_future(self._submit(fresh_state(url)))
        return name, url

    def give_back(self, name: str, template: str) -> None:
        """A copy of `template` the test is done with: emptied for a later test (or, if
        it changed beyond its rows, dropped and replaced), without waiting."""
        recycled = self._submit(self._recycle(name, template, self._fresh[template]))
        self._ready.setdefault(template, []).append(recycled)

    async def _recycle(self, name: str, template: str, fresh: FreshState) -> str:
        new_name = self._next_name()
        if template in self._reusable and await reset(with_database(self.admin_url, name), fresh):
            # Renamed, so that a client the test left behind cannot find it again.
            with contextlib.suppress(asyncpg.PostgresError):
                await self._admin.execute(f'ALTER DATABASE "{name}" RENAME TO "{new_name}"')
                self.reused += 1
                return new_name
        await self._drop(name)
        self.replaced += 1
        return await self._create(new_name, template)

    def drop_database(self, name: str) -> None:
        self._call(self._drop(name))

    async def drop(self, name: str) -> None:
        await asyncio.wrap_future(self._submit(self._drop(name)))

    async def _drop(self, name: str) -> None:
        await self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        for queue in self._ready.values():
            for ready in queue:
                self._call(self._drop(ready.result(120)))
        self._call(self._admin.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        for cleanup in reversed(self._cleanups):
            cleanup()  # type: ignore[operator]
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
