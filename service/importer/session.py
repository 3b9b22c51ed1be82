"""One import run: the HTTP client, signals, progress, the report and the summary."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import click

from service.importer.batches import BatchClient
from service.importer.connection import open_http
from service.importer.progress import progress_for
from service.importer.report import summarize, write_report
from service.importer.retry import RetryPolicy
from service.importer.rows import Row
from service.importer.runner import Stop, run_import

# The first stops sending and waits for the calls in flight; a second abandons them.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


@dataclass(frozen=True)
class Options:
    url: str
    token: str | None
    concurrency: int
    retries: int
    report: Path
    batch_size: int | None = None  # None: one call per row


async def run(rows: list[Row], options: Options) -> int:
    """Import the rows, write the report, print the summary; the exit status."""
    stop = Stop()
    signals: list[int] = []
    display = progress_for(len(rows))

    def on_signal(signum: int) -> None:
        signals.append(signum)
        if stop.graceful.is_set():
            display.note("abandoning the calls in flight")
        else:
            display.note("stopping: no new rows; waiting for the calls in flight (again: abort)")
        stop.escalate(f"interrupted by {signal.Signals(signum).name}")

    loop = asyncio.get_running_loop()
    handled = [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]
    for signum in handled:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
    started = time.monotonic()
    try:
        async with open_http(options.url, options.token, options.concurrency) as http:
            client = BatchClient(http, RetryPolicy(retries=options.retries))
            with display:
                results = await run_import(
                    rows,
                    client,
                    concurrency=options.concurrency,
                    stop=stop,
                    on_result=display.advance,
                    batch_size=options.batch_size,
                )
        summary = summarize(results, time.monotonic() - started)
        try:
            write_report(options.report, rows, results)
            reported, where = True, f"report: {options.report}"
        except OSError as exc:
            reported, where = False, f"the report could not be written: {exc}"
    finally:
        for signum in handled:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
    if stop.reason:
        click.echo(f"stopped: {stop.reason}")
    for line in summary.lines():
        click.echo(line)
    click.echo(where)
    if signals:
        return 128 + signals[0]
    return 0 if summary.ok and reported else 1
