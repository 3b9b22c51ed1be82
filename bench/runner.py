"""One benchmark run: start the stack, run the phases in order, report."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime
from typing import Any

from bench.import_phase import IMPORT_CONCURRENCY, import_phase
from bench.machine import CpuMeter, background_load, machine_info
from bench.options import HIGH, Options
from bench.phases import (
    Bench,
    bulk_phase,
    create_phase,
    limit_phase,
    read_phase,
    settle_outbox,
    webhook_phase,
)
from bench.procs import run_event_loop
from bench.profile import Profiler
from bench.report import render, targets, write_json
from bench.stack import BenchError, Stack

# Other processes using more than this before the start make the run unrepresentative.
BUSY_MACHINE_CORES = 0.3
NOTES = [
    "Notes: CPU cores = CPU seconds per second of each part during the phase; client = the "
    "load generator (pgbench in phase 1, `payments import` in phase 7); other = processes "
    "outside the benchmark; all = the whole machine, out of nproc.",
    "Webhook commit time = the payment's updated_at in the 201 body, i.e. the settle "
    "statement's now() (its transaction start, slightly before the commit).",
    "The payment SQL holds no NOTIFY (the service wakes its relay in process and sends one "
    "NOTIFY per burst for other relays, off the payment's path); a what-if line appears "
    "only if a pg_notify is put back into it.",
]


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


async def run(options: Options) -> dict[str, Any]:
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    # SIGTERM stops the run like Ctrl-C does: cancelled, so every child is stopped on the way out.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    idle_load = await asyncio.to_thread(background_load)
    if idle_load > BUSY_MACHINE_CORES:
        progress(
            f"warning: the machine is already busy ({idle_load:.2f} cores used by other "
            "processes); the results will be lower than on a quiet machine"
        )
    progress("starting PostgreSQL, the order stub and the service")
    async with Stack(options.database_url, options.workers) as stack:
        assert stack.service is not None and stack.stub is not None
        assert stack.postgres is not None
        meter = CpuMeter(
            stack.service.child.pid, stack.stub.child.pid, stack.postgres.postmaster_pid
        )
        bench = Bench(stack, options, meter, stack.service.target)
        machine = machine_info(stack.postgres.version(), options.workers)
        phases: dict[str, Any] = {}
        try:
            progress(f"1 limit: pgbench at concurrency 1, 16, 64, {options.duration:g} s each")
            phases["limit"] = await limit_phase(bench)
            limit_at_high = next(
                run["payments_per_s"]
                for run in phases["limit"]["runs"]
                if run["concurrency"] == HIGH
            )
            progress(f"2 create: concurrency 1, 16, 64, {options.duration:g} s each")
            profiler = Profiler.start(options.profile, stack, options.duration)
            phases["create"] = await create_phase(bench, limit_at_high or None, profiler)
            if profiler is not None:
                phases["profile"] = await profiler.finish()
            progress(f"3 read: by id and by order, {options.duration:g} s each")
            phases["read"] = await read_phase(bench)
            await settle_outbox(bench)
            progress(f"4 bulk: {options.bulk:,} orders at concurrency 64, then their webhooks")
            phases["bulk"], phases["memory"] = await bulk_phase(bench)
            await settle_outbox(bench)
            progress(
                f"5 webhook latency: {options.webhook_rate:g} payments/s for "
                f"{options.webhook_seconds:g} s"
            )
            phases["webhook"] = await webhook_phase(bench)
            await settle_outbox(bench)
            progress(
                f"7 import: {options.import_rows:,} rows with `payments import` at "
                f"concurrency {IMPORT_CONCURRENCY}, then their webhooks"
            )
            phases["import"] = await import_phase(bench)
        except Exception:
            print(f"--- service log (tail) ---\n{stack.service.child.tail()}", file=sys.stderr)
            raise
        service_problems = [
            line
            for line in stack.service.child.tail(10_000).splitlines()
            if '"level":"ERROR"' in line or "Traceback" in line
        ]
        progress("stopping everything")
    notes = list(NOTES)
    if not bench.relay_active:
        notes.append(
            "No order webhook arrived: the outbox relay does not run in the service yet "
            "(service/lifespan.py does not start it); the webhook phases report what arrived."
        )
    report: dict[str, Any] = {
        "started_at": started_at,
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "options": {
            "quick": options.quick,
            "duration_s": options.duration,
            "bulk": options.bulk,
            "import_rows": options.import_rows,
            "workers": options.workers,
            "webhook_rate": options.webhook_rate,
            "webhook_seconds": options.webhook_seconds,
            "external_database": options.database_url is not None,
        },
        "machine": {**machine, "load_before_start_cores": idle_load},
        "relay_active": bench.relay_active,
        "service_log_errors": service_problems[:20],
        "phases": phases,
        "notes": notes,
    }
    report["targets"] = [target.as_dict() for target in targets(phases)]
    report["machine"]["other_load_mean_cores"] = mean_other_load(phases)
    return report


def mean_other_load(node: Any) -> float | None:
    """Mean of every phase's "other" CPU cores: how much the machine was shared."""
    values: list[float] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            other = item.get("cpu_cores", {}).get("other") if "cpu_cores" in item else None
            if isinstance(other, int | float):
                values.append(float(other))
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk(node)
    return round(sum(values) / len(values), 2) if values else None


def main(options: Options) -> int:
    try:
        report = run_event_loop(run(options))
    except BenchError as exc:
        print(f"[bench] failed: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("[bench] interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    write_json(report, options.out)
    print(render(report))
    print(f"\nJSON: {options.out}")
    return 0
