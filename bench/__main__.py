"""`python -m bench [--quick]`: start everything, run the phases, print a table, write JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from bench.meter import Meter
from bench.phases import PHASES, Bench, Options
from bench.stack import started

QUICK = {"duration": 1.0, "bulk": 200, "webhook_seconds": 2.0}  # other defaults: Options


def parse_args() -> tuple[Options, Path]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke sizes; numbers mean nothing")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/latest.json")
    parser.add_argument("--duration", type=float, help="seconds of pgbench and of create (10)")
    parser.add_argument("--bulk", type=int, help="orders of the bulk phase (10000)")
    parser.add_argument("--import-rows", type=int, help="rows of the import phase (--bulk)")
    parser.add_argument("--workers", type=int, help="service processes (1)")
    parser.add_argument("--relays", type=int, help="relay processes beside them (0: in-process)")
    parser.add_argument("--webhook-rate", type=float, help="payments/s, webhook phase (200)")
    parser.add_argument("--webhook-seconds", type=float, help="length of that phase (10)")
    args = vars(parser.parse_args())
    given = {key: value for key, value in args.items() if value is not None and key != "out"}
    return Options(**(QUICK if args["quick"] else {}) | given), args["out"]


async def run(options: Options) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None  # SIGTERM stops the run as Ctrl-C does: everything is stopped
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    phases: dict[str, Any] = {}
    async with started(options.workers, options.relays) as stack:
        bench = Bench(options, stack, Meter(stack.pids))
        for label, phase in PHASES:
            print(f"[bench] {label}", file=sys.stderr, flush=True)
            bench.meter.start()
            data = await phase(bench)
            phases[phase.__name__] = {"label": label, "cpu": bench.meter.cores()} | data
    return {"started_at": started_at, "options": msgspec.structs.asdict(options), "phases": phases}


def table(report: dict[str, Any]) -> str:
    """A line a phase: its figures (nested ones in the JSON only), then CPU cores by part."""
    rows = [("phase", "result", "CPU cores: client service postgres stub other | all")]
    for data in report["phases"].values():
        shown = "  ".join(f"{k} {v}" for k, v in data.items() if isinstance(v, int | float))
        cores = [f"{v:.2f}" if v is not None else "-" for v in data["cpu"].values()]
        rows.append((data["label"], shown, " ".join([*cores[:-1], "|", *cores[-1:]])))
    width = [max(len(row[i]) for row in rows) for i in (0, 1)]
    quick = "  [--quick: smoke sizes, the numbers mean nothing]" * report["options"]["quick"]
    lines = [f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows]
    return "\n".join([f"Payment service benchmark, {report['started_at']}{quick}", *lines])


def main() -> int:
    options, out = parse_args()
    try:
        report = uvloop.run(run(options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("[bench] interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{table(report)}\n\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
