"""`payments import FILE`: the click command."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from service.importer.formats import FileFormatError
from service.importer.report import default_report_path
from service.importer.rows import read_rows
from service.settings import ConfigError, load_settings

INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C
CALLS_IN_FLIGHT = 16
BATCHES_IN_FLIGHT = 4
MAX_BATCH_ITEMS = 1000  # the service's limit per batch call
LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def default_url() -> str:
    """http://{host}:{port} of the configured server ([server] of litestar.toml)."""
    try:
        server = load_settings().server
    except ConfigError as exc:
        raise click.UsageError(f"{exc}; pass --url") from exc
    host = LOOPBACK.get(server.host, server.host)
    return f"http://{f'[{host}]' if ':' in host else host}:{server.port}"


@click.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option(
    "--url",
    default=None,
    help="Base URL of the payments service (default: http://[server] host:port of the config).",
)
@click.option(
    "--token",
    envvar="PAYMENTS_API_TOKEN",
    default=None,
    help="Bearer token, when the service requires one (or env PAYMENTS_API_TOKEN).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=None,
    help=f"Payment calls in flight at once [default: {BATCHES_IN_FLIGHT} batches, "
    f"or {CALLS_IN_FLIGHT} calls with --one-by-one].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_ITEMS),
    default=500,
    show_default=True,
    help="Rows per call to POST /api/v1/payments/batch.",
)
@click.option(
    "--one-by-one",
    is_flag=True,
    help="One POST /api/v1/payments/ call per row instead of batches.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 100),
    default=5,
    show_default=True,
    help="Further sends after a network error, 5xx or 409 (exponential backoff, jitter).",
)
@click.option(
    "--report",
    "report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The CSV report, one line per row (default: FILE.report.csv).",
)
def import_command(
    file: Path,
    url: str | None,
    token: str | None,
    concurrency: int | None,
    batch_size: int,
    one_by_one: bool,
    retries: int,
    report: Path,
) -> None:
    """Pay every order of FILE, each as its own payment, in batch calls (or one by one).

    FILE is CSV with the header order_id,amount[,currency], or JSON lines
    ({"order_id": 1, "amount": 5000}). Rows are checked locally first; invalid
    rows and repeated orders are reported, never sent. Each call carries an
    Idempotency-Key derived from its rows, so running the same file again (with
    the same --batch-size) never pays an order twice. Ctrl-C stops sending, waits
    for the calls in flight and writes the report (a second Ctrl-C abandons them).
    Exit status: 0 when every row ended paid or already paid, 1 otherwise (an order
    whose payment is still processing or was refunded too), 130 when interrupted.
    """
    try:
        rows = read_rows(file)
        base_url = (url or default_url()).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{base_url!r} is not an http(s) URL", param_hint="--url")
        from service.importer import session  # httpx, aiohttp, rich: only when importing

        in_flight = concurrency or (CALLS_IN_FLIGHT if one_by_one else BATCHES_IN_FLIGHT)
        report = report or default_report_path(file)
        batches = None if one_by_one else batch_size
        options = session.Options(base_url, token or None, in_flight, retries, report, batches)
        code = asyncio.run(session.run(rows, options))
    except FileFormatError as exc:
        raise click.BadParameter(str(exc), param_hint="FILE") from exc
    except KeyboardInterrupt:  # before session.run handles signals: nothing was sent
        code = INTERRUPTED
    sys.exit(code)
