"""The PostgreSQL server the tests use, and a fresh database per test.

By default an embedded server (pgserver) in a directory of this run's own;
PAYMENTS_TEST_DATABASE_URL points at an existing server instead (its user must
be allowed to create databases); PAYMENTS_TEST_TESTCONTAINERS=1 starts one in
Docker with testcontainers.

Databases are created and dropped with SQL over one admin connection (no
createdb/dropdb process per test), on a thread of its own so that both the
synchronous and the asynchronous fixtures can use it, and the next copy of a
template is made while the current test runs.
"""

from __future__ import annotations

import asyncio
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

_counter = itertools.count(1)
T = TypeVar("T")

# The embedded server is thrown away after the run: its data need not survive a
# power cut, and without a flush per commit a database copy is cheap to drop.
THROWAWAY_SERVER = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}


def with_database(url: str, database: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


class TestPostgres:
    __test__ = False  # not a test class, despite the name

    def __init__(self) -> None:
        self._cleanups: list[object] = []
        self._tmp: str | None = None
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
            server = pgserver.get_server(Path(self._tmp) / "pgdata", cleanup_mode="delete")
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
        self._spares: dict[str, Future[str]] = {}
        self._drops: list[Future[None]] = []

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

    async def copy_of(self, template: str) -> tuple[str, str]:
        """A fresh copy of `template` (made ahead of time), its name and URL; the next
        copy is started at once, to be ready for the next test."""
        ready = self._spares.pop(template, None) or self._submit(
            self._create(self._next_name(), template)
        )
        self._spares[template] = self._submit(self._create(self._next_name(), template))
        name = await asyncio.wrap_future(ready)
        return name, with_database(self.admin_url, name)

    def drop_database(self, name: str) -> None:
        self._call(self._drop(name))

    async def drop(self, name: str) -> None:
        await asyncio.wrap_future(self._submit(self._drop(name)))

    def drop_soon(self, name: str) -> None:
        """Drop a database nobody uses any more without waiting (40 to 80 ms a test):
        the next test has its copy already. Checked when the server closes."""
        self._drops = [drop for drop in self._drops if not drop.done() or drop.exception()]
        self._drops.append(self._submit(self._drop(name)))

    async def _drop(self, name: str) -> None:
        await self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        for drop in self._drops:
            drop.result(120)
        for spare in self._spares.values():
            self._call(self._drop(spare.result(120)))
        self._call(self._admin.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        for cleanup in reversed(self._cleanups):
            cleanup()  # type: ignore[operator]
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
