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
import os
import subprocess
import sys

import click

from service.db.embedded import NoEmbeddedCluster, bin_dir, database_url, existing_database_url
from service.db.migrate import migrate
from service.outbox.processes import IN_PROCESS_RELAY_VARIABLE, RelayProcesses
from service.settings import load_settings


@click.group(name="db")
def db_group() -> None:
    """The service's database."""


@db_group.command(name="migrate")
def db_migrate() -> None:
    """Apply pending migrations (safe while other processes start or migrate)."""
    url = database_url(load_settings().database)
    applied = asyncio.run(migrate(url))
    click.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


@db_group.command(name="psql", context_settings={"ignore_unknown_options": True})
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
def db_psql(psql_args: tuple[str, ...]) -> None:
    """Open psql on the configured database; extra arguments go to psql (e.g. -c '...')."""
    try:
        url = existing_database_url(load_settings().database)
    except NoEmbeddedCluster as exc:
        raise click.ClickException(str(exc)) from exc
    # A child process, not exec: the embedded server must see this process exit
    # normally to release it.
    completed = subprocess.run([str(bin_dir() / "psql"), url, *psql_args], check=False)
    sys.exit(completed.returncode)


@click.command(name="serve")
@click.option("--host", default=None, help="Address to bind (default: [server] host).")
@click.option("--port", type=int, default=None, help="Port (default: [server] port).")
@click.option("--workers", type=int, default=None, help="Processes (default: [server] workers).")
@click.option(
    "--relays", type=int, default=None, help="Relay processes (default: [server] relay_processes)."
)
def serve(host: str | None, port: int | None, workers: int | None, relays: int | None) -> None:
    """Serve with granian, the faster ASGI server (Rust HTTP stack), and the outbox relays
    in processes of their own."""
    from granian import Granian
    from granian.constants import Interfaces

    settings = load_settings()
    relays = settings.server.relay_processes if relays is None else relays
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
            address=host or settings.server.host,
            port=port or settings.server.port,
            workers=workers or settings.server.workers,
            backlog=2048,
        ).serve()
    finally:
        if relay_processes is not None:
            relay_processes.stop()


def main() -> None:
    """Entry point of the `payments` console script."""
    os.environ.setdefault("LITESTAR_APP", "service.app:create_app")
    settings = load_settings()
    os.environ.setdefault("LITESTAR_HOST", settings.server.host)
    os.environ.setdefault("LITESTAR_PORT", str(settings.server.port))

    from litestar.cli.main import litestar_group

    # The project's commands come from the app's CLI plugin (service/app.py).
    litestar_group(prog_name="payments")
