"""A streaming standby of the test PostgreSQL, made from the embedded server's own binaries.

`pg_basebackup -R` copies the running test server and writes the standby's
connection to it; `pg_ctl` starts the copy on a socket directory of its own, under
a temporary directory that is removed afterwards, whatever the test did. pgserver's
cluster already allows it: `wal_level = replica`, `max_wal_senders = 10` (the
defaults) and initdb's `local replication all trust` line in pg_hba.conf.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg

from service.db.embedded import bin_dir
from service.db.sql import load_queries
from tests.support.postgres import with_database
from tests.support.sql import load_test_queries

# PostgreSQL refuses to run as root; pgserver then runs it as this user, and so do we.
SYSTEM_USER = "pgserver" if os.geteuid() == 0 else None


def _run(*argv: str, timeout: float = 120) -> None:
    done = subprocess.run(
        [str(bin_dir() / argv[0]), *argv[1:]],
        capture_output=True,
        timeout=timeout,
        user=SYSTEM_USER,
    )
    if done.returncode != 0:
        raise subprocess.SubprocessError(
            f"{argv[0]} failed: {done.stderr.decode(errors='replace')}"
        )


def _give_to_postgres(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    if SYSTEM_USER is not None:
        shutil.chown(path, SYSTEM_USER, SYSTEM_USER)


class Standby:
    """A hot standby streaming from the server at `primary_url`, in `root`."""

    def __init__(self, primary_url: str, root: Path) -> None:
        self.primary_url = primary_url
        self.data = root / "data"
        self.socket_dir = root / "socket"
        self.log = self.socket_dir / "standby.log"  # where the postgres user may write

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:@/{database}?host={self.socket_dir}"

    def url_like(self, primary_database_url: str) -> str:
        """This standby's URL for the database a primary URL names."""
        return with_database(self.url(), urlsplit(primary_database_url).path.lstrip("/"))

    def create(self) -> None:
        _give_to_postgres(self.data)
        _give_to_postgres(self.socket_dir)
        # -c fast: no spread checkpoint to wait for; -X stream: the WAL of the copy too.
        _run(
            "pg_basebackup",
            "-d",
            self.primary_url,
            "-D",
            str(self.data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        )

    def start(self) -> None:
        options = f'-h "" -k {self.socket_dir}'
        _run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        _run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def running(self) -> bool:
        status = subprocess.run(
            [str(bin_dir() / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            user=SYSTEM_USER,
        )
        return status.returncode == 0

    async def caught_up(self, within: float = 60.0) -> None:
        """Wait until the standby has replayed all the primary had committed when asked."""
        queries = load_queries()
        primary = await asyncpg.connect(self.primary_url)
        try:
            # Everything committed, written out or not, then a commit beyond it.
            target = await load_test_queries().wal_inserted_position(primary)
            await load_test_queries().flush_wal(primary)
        finally:
            await primary.close()
        deadline = time.monotonic() + within
        while True:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                standby = await asyncpg.connect(self.url())
                try:
                    position = await queries.replica_replay_position(standby)
                finally:
                    await standby.close()
                if position["replayed"] is not None and position["replayed"] >= target:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"the standby did not catch up:\n{self.log_tail()}")
            await asyncio.sleep(0.05)

    async def resume_replay(self) -> None:
        """Replay again, if a test paused it."""
        standby = await asyncpg.connect(self.url())
        try:
            await load_test_queries().resume_replay(standby)
        finally:
            await standby.close()

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def is_embedded(admin_url: str) -> bool:
    """Whether the test server is local (a unix socket), so its binaries can copy it."""
    return "host" in parse_qs(urlsplit(admin_url).query)


@contextlib.contextmanager
def streaming_standby(primary_url: str) -> Iterator[Standby]:
    """A running standby of `primary_url`'s server; stopped and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="payments-standby-"))
    root.chmod(0o755)  # the postgres user must reach its directories inside
    standby = Standby(primary_url, root)
    try:
        standby.create()
        standby.start()
        yield standby
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            if standby.running:
                standby.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
