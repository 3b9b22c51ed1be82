"""The embedded PostgreSQL (pip package pgserver), used when no database URL is set."""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

from service.settings import DatabaseSettings

log = logging.getLogger(__name__)
DATABASE = "payments"
# Servers this process attached to (pgserver keeps one per data directory).
_attached: list[Any] = []
# pgserver logs every step (initdb output included) at INFO.
logging.getLogger("pgserver").setLevel(logging.WARNING)


class NoEmbeddedCluster(Exception):
    """The embedded data directory holds no database cluster yet."""


def bin_dir() -> Path:
    """Where pgserver keeps its PostgreSQL binaries (psql, pgbench, createdb, ...).

    The one private name of pgserver this project uses: pgserver runs its tools
    itself and has no public way to find them. tests/test_packaging.py fails
    loudly if an upgrade moves it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def has_cluster(data_dir: str | Path) -> bool:
    """Whether `data_dir` holds an initialised cluster (PostgreSQL's PG_VERSION marker)."""
    return (Path(data_dir).expanduser() / "PG_VERSION").is_file()


def start_embedded(data_dir: str | Path) -> Any:
    """Start (or attach to) the embedded server whose data lives in `data_dir`.

    pgserver creates the cluster when the directory has none, shares one server
    per data directory among the processes attached to it and stops it when the
    last one exits.
    """
    with warnings.catch_warnings():
        # pgserver warns when XDG_RUNTIME_DIR is unset; it falls back to /tmp.
        warnings.simplefilter("ignore")
        import pgserver

        path = Path(data_dir).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(path, cleanup_mode="stop")  # type: ignore[attr-defined]
    socket_dir = server.get_postmaster_info().socket_dir
    if socket_dir is not None:
        protect_socket_dir(Path(socket_dir), server_uid=path.stat().st_uid)
    created = subprocess.run(
        [bin_dir() / "createdb", "-h", str(socket_dir), "-U", "postgres", DATABASE],
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0 and "already exists" not in created.stderr:
        raise RuntimeError(f"cannot create the {DATABASE} database: {created.stderr.strip()}")
    log.debug("embedded PostgreSQL running in %s", path)
    _attached.append(server)
    return server


def protect_socket_dir(socket_dir: Path, server_uid: int) -> None:
    """Make the directory of the server's unix socket its owner's alone (mode 0700).

    The embedded server trusts every local connection (pgserver's initdb runs with
    --auth-local=trust), so whoever can reach its socket is a superuser. pgserver puts
    the socket in the data directory (0700) unless that path is too long for a socket,
    then in a runtime directory ($XDG_RUNTIME_DIR, else /tmp/runtime-<uid>) made with
    the umask's mode, or 0777 when run as root (the server then runs as a user of its
    own, who must keep the directory: hence the chown).
    """
    owner = socket_dir.stat().st_uid
    if owner not in (server_uid, os.geteuid()):
        raise RuntimeError(
            f"the embedded PostgreSQL's socket directory {socket_dir} belongs to another "
            f"user (uid {owner}), who could intercept or reach the server: remove it"
        )
    if owner != server_uid:
        os.chown(socket_dir, server_uid, -1)
    socket_dir.chmod(0o700)


def detach_embedded() -> None:
    """Let go of the embedded server now, stopping it if no other process uses it.

    pgserver does this at interpreter exit, but uvicorn re-raises SIGTERM after its
    graceful shutdown, which ends the process before exit handlers run and would
    leave the server running (and this process registered) after `payments run`.
    With cleanup_mode="stop", cleanup() stops the server only when this process is
    the last one attached, and never deletes the data.
    """
    while _attached:
        _attached.pop().cleanup()


def embedded_url(data_dir: str | Path) -> str:
    """The URL of the embedded server's `payments` database, starting it if needed."""
    return str(start_embedded(data_dir).get_uri(DATABASE))


def database_url(settings: DatabaseSettings) -> str:
    """The configured URL, or the embedded server's (started, and created, on demand)."""
    return settings.url or embedded_url(settings.embedded_dir)


def existing_database_url(settings: DatabaseSettings) -> str:
    """Like database_url, for commands that only read: an absent cluster is an error.

    Creating an empty cluster there would only hide a wrong directory or a missing step.
    """
    if not settings.url and not has_cluster(settings.embedded_dir):
        raise NoEmbeddedCluster(
            f"no embedded database in {Path(settings.embedded_dir).expanduser()} yet: "
            "run `payments db migrate` (or start the service with `payments run`) "
            "to create it, or check [database] embedded_dir and PAYMENTS_CONFIG"
        )
    return database_url(settings)
