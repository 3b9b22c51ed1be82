"""The CSV report (one line per input row, in input order) and the summary."""

from __future__ import annotations

import csv
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service.importer.outcomes import SUCCESSES, Outcome, Result
from service.importer.rows import Row

COLUMNS = (
    "line",
    "order_id",
    "amount",
    "outcome",
    "payment_id",
    "payment_status",
    "http_status",
    "problem_type",
    "detail",
)


def default_report_path(source: Path) -> Path:
    return source.with_name(source.name + ".report.csv")


def write_report(path: Path, rows: Sequence[Row], results: Sequence[Result]) -> None:
    """Written to a temporary file, then renamed: a report is whole or absent, never cut."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(COLUMNS)
            for row, result in zip(rows, results, strict=True):
                writer.writerow(
                    (
                        row.line,
                        row.order_id,
                        row.amount,
                        result.outcome.value,
                        "" if result.payment_id is None else result.payment_id,
                        result.payment_status,
                        "" if result.http_status is None else result.http_status,
                        result.problem_type,
                        result.detail,
                    )
                )
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Summary:
    counts: Counter[Outcome]
    rows: int
    calls: int  # rows sent to the service
    seconds: float

    @property
    def ok(self) -> bool:
        """Every row ended paid or already paid."""
        return sum(self.counts[outcome] for outcome in SUCCESSES) == self.rows

    @property
    def rate(self) -> float:
        """Rows sent per second."""
        return self.calls / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        c = self.counts
        parts = [
            f"paid {c[Outcome.PAID]}",
            f"already paid {c[Outcome.ALREADY_PAID]}",
            f"processing {c[Outcome.PROCESSING]}",
            f"refunded {c[Outcome.REFUNDED]}",
            f"declined {c[Outcome.DECLINED]}",
            f"invalid {c[Outcome.INVALID]}",
            f"duplicate in file {c[Outcome.DUPLICATE_IN_FILE]}",
            f"rejected {c[Outcome.REJECTED]}",
            f"failed {c[Outcome.FAILED]}",
        ]
        if c[Outcome.NOT_SENT]:
            parts.append(f"not sent {c[Outcome.NOT_SENT]}")
        return [
            f"rows: {self.rows}; " + ", ".join(parts),
            f"time: {self.seconds:.1f} s, {self.calls} calls, rate: {self.rate:.0f} calls/s",
        ]


def summarize(results: Sequence[Result], seconds: float) -> Summary:
    counts = Counter(result.outcome for result in results)
    calls = sum(1 for result in results if result.sends > 0)
    return Summary(counts, len(results), calls, seconds)
