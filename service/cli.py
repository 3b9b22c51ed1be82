"""`payments`: the Litestar CLI with the app preset, plus the project's own commands.

payments run                 serve (uvicorn, via Litestar; default 127.0.0.1:8001)
payments db migrate          apply pending migrations
payments db psql             open psql on the configured database (embedded too)

The app's CLI plugin adds the project's commands (`db`, `serve`, `ops`, `outbox`,
`relay`, `import`) to Litestar's CLI, from the `payments.commands` entry points
of pyproject.toml.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import subprocess
import sys

import click

from service.api.auth import open_access_warning
from service.db.embedded import NoEmbeddedCluster, bin_dir, database_url, existing_database_url
from service.db.libpq_env import UnsupportedURL, libpq_environment
from service.db.migrate import MigrationError, migrate
from service.db.pool import direct_url
from service.outbox.processes import (
    IN_PROCESS_RELAY_VARIABLE,
    RelayProcesses,
    relay_processes_for,
    usable_cores,
)
from service.settings import ConfigError, load_settings

log = logging.getLogger(__name__)


@click.group(name="db")
def db_group() -> None:
    """The service's database."""


@db_group.command(name="migrate")
def db_migrate() -> None:
    """Apply pending migrations (safe while other processes start or migrate)."""
    database = load_settings().database
    url = direct_url(database, database_url(database))
    try:
        applied = asyncio.run(migrate(url, lock_timeout=database.migration_lock_timeout_seconds))
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


@db_group.command(name="psql", context_settings={"ignore_unknown_options": True})
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
def db_psql(psql_args: tuple[str, ...]) -> None:
    """Open psql on the configured database (its direct_url, if set); extra arguments
    go to psql (e.g. -c '...')."""
    try:
        database = load_settings().database
        # Direct, past a pooler: an operator's session may SET things, which a
        # transaction pooler would leave on a server connection other clients share.
        url = direct_url(database, existing_database_url(database))
        # In psql's environment, not on its command line, where any local user could
        # read the password (ps, /proc/<pid>/cmdline).
        connection = libpq_environment(url)
    except (NoEmbeddedCluster, UnsupportedURL) as exc:
        raise click.ClickException(str(exc)) from exc
    # A child process, not exec: the embedded server must see this process exit
    # normally to release it.
    completed = subprocess.run(
        [str(bin_dir() / "psql"), *psql_args], env=os.environ | connection, check=False
    )
    sys.exit(completed.returncode)


# Open files a worker needs beyond its connections: pool, relay, logs, libraries.
SPARE_FILES = 256


def allow_open_files(wanted: int) -> None:
    """Raise the soft limit on open files toward `wanted` (the workers inherit it).

    Every connection is a file: under the usual soft limit of 1,024, accept() would
    fail long before [server] max_connections, and then no client gets in.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        click.echo(
            f"warning: at most {hard} open files per process (hard limit), fewer than "
            f"[server] max_connections needs ({wanted}); raise LimitNOFILE / ulimit -Hn",
            err=True,
        )


@click.command(name="serve")
@click.option("--host", default=None, help="Address to bind (default: [server] host).")
@click.option("--port", type=int, default=None, help="Port (default: [server] port).")
@click.option("--workers", type=int, default=None, help="Processes (default: [server] workers).")
@click.option(
    "--relays",
    type=int,
    default=None,
    help="Relay processes (default: [server] relay_processes; auto: by the machine's cores).",
)
def serve(host: str | None, port: int | None, workers: int | None, relays: int | None) -> None:
    """Serve with granian, the faster ASGI server (Rust HTTP stack), and the outbox relays
    in processes of their own."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    settings = load_settings()
    server = settings.server
    address, port = host or server.host, port or server.port
    # Here, once: the workers, which start the app, are not told the address.
    if warning := open_access_warning(settings.auth, address, port):
        log.warning(warning)
    allow_open_files(server.max_connections + SPARE_FILES)
    workers = workers or server.workers
    wanted = server.relay_processes if relays is None else relays
    relays = relay_processes_for(workers, usable_cores()) if wanted == "auto" else wanted
    relay_processes = None
    if relays > 0 and settings.outbox.relay_in_process:
        # The workers leave the webhooks to these processes (read by load_settings).
        os.environ[IN_PROCESS_RELAY_VARIABLE] = "false"
        relay_processes = RelayProcesses(relays).start()
    try:
        Granian(
            "service.app:create_app",
            factory=True,
            interface=Interfaces.ASGI,
            address=address,
            port=port,
            workers=workers,
            # HTTP/1.1 only: granian times out unfinished HTTP/1 headers, while an HTTP/2
            # (h2c) connection could hold its slot without ever finishing a request.
            http=HTTPModes.http1,
            backlog=server.backlog,
            # Granian holds one of these slots per open connection, idle or not: sized well
            # above what stalled clients can hold within the timeouts (see README).
            backpressure=server.max_connections,
            http1_settings=HTTP1Settings(
                header_read_timeout=round(server.header_read_timeout_seconds * 1000)
            ),
        ).serve()
    finally:
        if relay_processes is not None:
            relay_processes.stop()


def main() -> None:
    """Entry point of the `payments` console script."""
    os.environ.setdefault("LITESTAR_APP", "service.app:create_app")
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise SystemExit(f"Error: {exc}") from None
    os.environ.setdefault("LITESTAR_HOST", settings.server.host)
    os.environ.setdefault("LITESTAR_PORT", str(settings.server.port))

    from litestar.cli.main import litestar_group

    # The project's commands come from the app's CLI plugin (service/app.py).
    if sys.stderr.isatty():
        litestar_group(prog_name="payments")
        return
    # Not a terminal (a script, a log, a test): errors as click's plain one-line text.
    # rich-click draws them in a box whose border, at its own width, splits the message.
    try:
        litestar_group.main(prog_name="payments", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
