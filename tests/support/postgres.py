"""The PostgreSQL server the tests use, and a fresh database per test.

By default an embedded server (pgserver) in a directory of this run's own;
PAYMENTS_TEST_DATABASE_URL points at an existing server instead (its user must
be allowed to create databases); PAYMENTS_TEST_TESTCONTAINERS=1 starts one in
Docker with testcontainers.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from service.db.embedded import bin_dir

_counter = itertools.count(1)


def with_database(url: str, database: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


class TestPostgres:
    __test__ = False  # not a test class, despite the name

    def __init__(self) -> None:
        self._cleanups: list[object] = []
        self._tmp: str | None = None
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
        self.prefix = f"pt{os.getpid()}"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(bin_dir() / tool), f"--maintenance-db={self.admin_url}", *args],
            check=True,
            capture_output=True,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        )

    def create_database(self, template: str | None = None) -> tuple[str, str]:
        """Create a database (a copy of `template` if given); return its name and URL."""
        name = f"{self.prefix}_{next(_counter)}"
        self._run("createdb", *(["--template", template] if template else []), name)
        return name, with_database(self.admin_url, name)

    def drop_database(self, name: str) -> None:
        self._run("dropdb", "--force", "--if-exists", name)

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            cleanup()  # type: ignore[operator]
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
