"""Progress: a rich progress bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from service.importer.outcomes import SUCCESSES, Outcome, Result

PLAIN_INTERVAL_SECONDS = 5.0


class ProgressDisplay(Protocol):
    def __enter__(self) -> ProgressDisplay: ...
    def __exit__(self, *exc: object) -> None: ...
    def advance(self, result: Result) -> None: ...
    def note(self, message: str) -> None: ...


def _tally(counts: Counter[Outcome]) -> str:
    ok = sum(counts[outcome] for outcome in SUCCESSES)
    other = sum(counts.values()) - ok
    return f"ok {ok}, not ok {other}"


class BarProgress:
    """A live bar on stderr: done/total, percentage, rows/s, elapsed, remaining."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self._counts: Counter[Outcome] = Counter()
        self._progress = Progress(
            TextColumn("import"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[tally]}"),
            console=Console(file=stream),
        )
        self._task = self._progress.add_task("import", total=total, rate="", tally="")
        self._started = time.monotonic()

    def __enter__(self) -> BarProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def advance(self, result: Result) -> None:
        self._counts[result.outcome] += 1
        done = sum(self._counts.values())
        rate = done / max(time.monotonic() - self._started, 1e-6)
        self._progress.update(
            self._task, advance=1, rate=f"{rate:,.0f} rows/s", tally=_tally(self._counts)
        )

    def note(self, message: str) -> None:
        self._progress.console.print(message, highlight=False, markup=False)


class PlainProgress:
    """A line every few seconds: `import: 1200/2000 rows (60%), 310 rows/s, ok 1190, ...`."""

    def __init__(
        self, total: int, stream: TextIO, interval: float = PLAIN_INTERVAL_SECONDS
    ) -> None:
        self._total = total
        self._stream = stream
        self._interval = interval
        self._counts: Counter[Outcome] = Counter()
        self._started = self._last = time.monotonic()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._line()

    def advance(self, result: Result) -> None:
        self._counts[result.outcome] += 1
        if time.monotonic() - self._last >= self._interval:
            self._line()

    def note(self, message: str) -> None:
        print(message, file=self._stream, flush=True)

    def _line(self) -> None:
        self._last = time.monotonic()
        done = sum(self._counts.values())
        rate = done / max(self._last - self._started, 1e-6)
        share = 100 * done / self._total if self._total else 100.0
        self.note(
            f"import: {done}/{self._total} rows ({share:.0f}%), {rate:,.0f} rows/s, "
            + _tally(self._counts)
        )


def progress_for(total: int, stream: TextIO | None = None) -> ProgressDisplay:
    stream = stream or sys.stderr
    if stream.isatty():
        return BarProgress(total, stream)
    return PlainProgress(total, stream)
