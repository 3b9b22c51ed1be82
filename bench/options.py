"""Command-line options of `python -m bench`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"
LEVELS = (1, 16, 64)  # concurrency of the limit and create phases
HIGH = 64  # concurrency of the read and bulk phases, and of the ratio
QUICK_DURATION = 1.0
QUICK_BULK = 200
QUICK_WEBHOOK_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Options:
    database_url: str | None
    quick: bool
    out: Path
    duration: float  # seconds per measured phase
    bulk: int  # orders in the bulk phase
    import_rows: int  # rows of the import phase (`payments import`)
    workers: int  # `payments serve --workers`
    webhook_rate: float  # payments/s in the webhook latency phase
    webhook_seconds: float
    profile: Path | None  # py-spy output directory

    @property
    def warmup(self) -> float:
        return min(2.0, self.duration / 2)

    @property
    def settle_bound(self) -> float:
        """Longest wait for the relay to catch up between phases."""
        return 20.0 if self.quick else 120.0


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the payment service against PostgreSQL's own limit (pgbench).",
    )
    parser.add_argument(
        "--database-url",
        help="use this PostgreSQL server (its user must be able to create databases) "
        "instead of a private embedded one",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: a smoke run of every phase"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--duration", type=float, help="seconds per measured phase (default 10)")
    parser.add_argument("--bulk", type=int, help="orders in the bulk phase (default 10000)")
    parser.add_argument(
        "--import-rows",
        type=int,
        help="rows imported by `payments import` in the import phase (default: the bulk size)",
    )
    parser.add_argument("--workers", type=int, default=1, help="service processes (default 1)")
    parser.add_argument(
        "--webhook-rate", type=float, default=200.0, help="payments/s of the webhook phase"
    )
    parser.add_argument("--webhook-seconds", type=float, help="length of the webhook phase")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the service with py-spy during create at concurrency 64 into this "
        "directory (needs py-spy; perturbs that phase)",
    )
    args = parser.parse_args(argv)
    quick: bool = args.quick
    duration = args.duration or (QUICK_DURATION if quick else 10.0)
    bulk = args.bulk or (QUICK_BULK if quick else 10_000)
    return Options(
        database_url=args.database_url,
        quick=quick,
        out=args.out,
        duration=duration,
        bulk=bulk,
        import_rows=args.import_rows or bulk,
        workers=args.workers,
        webhook_rate=args.webhook_rate,
        webhook_seconds=args.webhook_seconds or (QUICK_WEBHOOK_SECONDS if quick else 10.0),
        profile=args.profile,
    )
