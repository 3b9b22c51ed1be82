"""PostgreSQL for the benchmark: a private embedded server (or a given one) and fresh databases."""

from __future__ import annotations

import os
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from service.db.embedded import bin_dir

TOOL_TIMEOUT = 120.0


def with_database(url: str, database: str) -> str:
    """The same server URL, naming another database."""
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


@dataclass
class Postgres:
    """A server the benchmark may create databases on."""

    admin_url: str
    postmaster_pid: int | None = None  # known for the embedded server only
    _server: Any = field(default=None, repr=False)
    _created: list[str] = field(default_factory=list, repr=False)

    @classmethod
    def embedded(cls, directory: Path) -> Postgres:
        """A private pgserver instance in `directory`, deleted by close()."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # XDG_RUNTIME_DIR unset: pgserver uses /tmp
            import pgserver

            server = pgserver.get_server(  # type: ignore[attr-defined]
                directory / "pgdata", cleanup_mode="delete"
            )
        return cls(server.get_uri("postgres"), server.get_pid(), server)

    def _tool(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir() / tool), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=TOOL_TIMEOUT,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        )

    def create_database(self, name: str) -> str:
        """A fresh, empty database (dropped first if a previous run left it); its URL."""
        self._tool("dropdb", f"--maintenance-db={self.admin_url}", "--force", "--if-exists", name)
        self._tool("createdb", f"--maintenance-db={self.admin_url}", name)
        self._created.append(name)
        return with_database(self.admin_url, name)

    def version(self) -> str:
        return self._tool("psql", self.admin_url, "-Atc", "SHOW server_version").stdout.strip()

    def close(self) -> None:
        """Drop the databases made here (a given server), or delete the embedded one."""
        if self._server is not None:
            self._server.cleanup()
            return
        for name in reversed(self._created):
            try:
                self._tool(
                    "dropdb", f"--maintenance-db={self.admin_url}", "--force", "--if-exists", name
                )
            except (subprocess.SubprocessError, OSError) as exc:
                print(f"warning: could not drop database {name}: {exc}")
