"""A real PgBouncer (Debian's package) in transaction pooling mode, in front of the test server.

Its own ini file in a directory of its own, listening on a free loopback port, forwarding
every database name to the test PostgreSQL (its `*` fallback entry), with a pool so small
that the service's connections really share server connections.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from service.db.embedded import bin_dir
from tests.support.service import free_port
from tests.support.sql import load_test_queries

console_commands: Any = load_test_queries()

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
# PgBouncer refuses to run as root. As root it runs as the owner of the server's socket
# directory (pgserver's own user, the only one allowed in), or as this user.
UNPRIVILEGED_USER = "nobody"


def require_pgbouncer() -> None:
    """Skip (saying why) where PgBouncer is not installed; under CI its absence is a failure."""
    if os.path.exists(PGBOUNCER):
        return
    if os.environ.get("CI"):
        pytest.fail("CI must install Debian's pgbouncer (.ci/run does)")
    pytest.skip("needs Debian's pgbouncer (apt-get install pgbouncer)")


def server_address(url: str) -> tuple[str, int]:
    """Host (or unix socket directory) and port of a PostgreSQL URL, as PgBouncer wants them."""
    parts = urlsplit(url)
    host = parts.hostname or parse_qs(parts.query).get("host", ["/tmp"])[0]
    if parts.port:
        return host, parts.port
    if host.startswith("/"):  # pgserver's socket: the port is in the socket file's name
        sockets = sorted(Path(host).glob(".s.PGSQL.*[0-9]"))
        if sockets:
            return host, int(sockets[0].name.rsplit(".", 1)[1])
    return host, 5432


class PgBouncer:
    """`pgbouncer` as a child process; `stop()` ends it (always call it, even on failure)."""

    def __init__(self, server_url: str, *, pool_size: int = 4) -> None:
        self.user = urlsplit(server_url).username or "postgres"
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="payments-pgbouncer-"))
        host, port = server_address(server_url)
        self.run_as = UNPRIVILEGED_USER
        if host.startswith("/"):
            self.run_as = pwd.getpwuid(Path(host).stat().st_uid).pw_name
        (self.directory / "users.txt").write_text(f'"{self.user}" ""\n')
        (self.directory / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={host} port={port} user={self.user}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            # The test server trusts its local users; PgBouncer checks nothing either.
            "auth_type = trust\n"
            f"auth_file = {self.directory / 'users.txt'}\n"
            f"admin_users = {self.user}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 500\n"
        )
        self.log = self.directory / "pgbouncer.log"
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def url_for(self, server_url: str) -> str:
        """This pooler's URL for the database a URL of the server names."""
        return self.url(urlsplit(server_url).path.lstrip("/"))

    def start(self, within: float = 10.0) -> PgBouncer:
        argv = [PGBOUNCER]
        if os.geteuid() == 0:
            self.directory.chmod(0o755)
            argv += ["-u", self.run_as]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [*argv, str(self.directory / "pgbouncer.ini")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"pgbouncer exited at start:\n{self.tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            time.sleep(0.05)
        raise AssertionError(f"pgbouncer did not listen within {within}s:\n{self.tail()}")

    def console(self, command: str) -> list[dict[str, str]]:
        """A command of PgBouncer's admin console (`SHOW POOLS`), its rows as dicts.

        psql, not asyncpg: the console speaks only the simple query protocol.
        """
        completed = subprocess.run(
            [str(bin_dir() / "psql"), "--csv", "-X", "-c", command, self.url("pgbouncer")],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return list(csv.DictReader(io.StringIO(completed.stdout)))

    def pool(self, server_url: str) -> dict[str, int]:
        """SHOW POOLS of the database of `server_url`: its clients (cl_*) and servers (sv_*)."""
        return self._row_of(console_commands.pgbouncer_pools.sql, server_url, ("cl_", "sv_"))

    def stats(self, server_url: str) -> dict[str, int]:
        """SHOW STATS of the database of `server_url`: transactions and queries carried."""
        return self._row_of(console_commands.pgbouncer_stats.sql, server_url, ("total_",))

    def _row_of(self, command: str, server_url: str, prefixes: tuple[str, ...]) -> dict[str, int]:
        database = urlsplit(server_url).path.lstrip("/")
        [row] = [row for row in self.console(command) if row["database"] == database]
        return {key: int(value) for key, value in row.items() if key.startswith(prefixes)}

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)
