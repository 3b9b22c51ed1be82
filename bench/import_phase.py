"""Phase 7: a bulk import with the operator tool, `payments import FILE`, as a subprocess.

The tool runs exactly as an operator would run it (its own process, its own HTTP client,
`--concurrency 16`, no token) against the running service; the phase measures the command's
wall time, reads its CSV report, and waits until the stub received every webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import random
import re
import resource
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.machine import CpuMeter, with_other
from bench.phases import ORDER_BASE, Bench, wait_for_webhooks
from bench.stack import payments_command

IMPORT_CONCURRENCY = 16
# After a timeout: SIGINT (the tool stops sending and writes its report), then SIGKILL.
INTERRUPT_GRACE = 15.0
# The tool's own summary line: "time: 12.3 s, 10000 calls, rate: 812 calls/s".
SUMMARY_TIME = re.compile(r"^time: ([0-9.]+) s, (\d+) calls", re.MULTILINE)
OUTPUT_TAIL = 2000


def write_import_csv(path: Path, base: int, count: int, seed: int = 7) -> None:
    """order_id,amount,currency: orders base..base+count-1, whole yen 100..1,000,000."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(("order_id", "amount", "currency"))
        for index in range(count):
            writer.writerow((base + index, rng.randint(100, 1_000_000), "JPY"))


def read_outcomes(report: Path) -> Counter[str]:
    """How many rows of the tool's CSV report ended in each outcome (paid, failed, ...)."""
    if not report.exists():
        return Counter()
    with report.open(newline="", encoding="utf-8") as source:
        return Counter(row["outcome"] for row in csv.DictReader(source))


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _run_command(argv: list[str], cwd: Path, bound: float) -> tuple[int | None, str, bool]:
    """Run argv within `bound` seconds; (exit code, output, timed out). Never left running."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PAYMENTS_")}
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # a terminal Ctrl-C reaches the benchmark only
    )
    assert process.stdout is not None
    reader = asyncio.create_task(process.stdout.read())
    timed_out = False
    try:
        try:
            await asyncio.wait_for(process.wait(), bound)
        except TimeoutError:
            timed_out = True
            _signal_group(process.pid, signal.SIGINT)  # the tool stops and writes its report
            try:
                await asyncio.wait_for(process.wait(), INTERRUPT_GRACE)
            except TimeoutError:
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
    finally:
        if process.returncode is None:  # cancelled (Ctrl-C of the benchmark)
            _signal_group(process.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), INTERRUPT_GRACE)
        try:
            output = await asyncio.wait_for(reader, INTERRUPT_GRACE)
        except TimeoutError:  # something the command started still holds the pipe
            output = b""
    return process.returncode, output.decode("utf-8", "replace"), timed_out


def _signal_group(pid: int, signum: int) -> None:
    """Signal the command's process group (its own session: the command and its children)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


async def import_phase(bench: Bench) -> dict[str, Any]:
    """N rows paid by `payments import`, and all N webhooks received."""
    options = bench.options
    count = options.import_rows
    base = ORDER_BASE["import"]
    tmp = bench.stack.tmp
    source, report = tmp / "import.csv", tmp / "import.report.csv"
    write_import_csv(source, base, count)
    bound = 60.0 if options.quick else 600.0
    url = f"http://{bench.target.authority}"
    argv = [*payments_command(), "import", str(source), "--url", url]
    argv += ["--concurrency", str(IMPORT_CONCURRENCY), "--report", str(report)]

    before = bench.meter.snapshot()
    client_before = _children_cpu_s()
    started_ns, started = time.time_ns(), time.perf_counter()
    code, output, timed_out = await _run_command(argv, tmp, bound)
    command_wall = time.perf_counter() - started
    client_cpu = _children_cpu_s() - client_before
    outcomes = read_outcomes(report)
    paid = outcomes.get("paid", 0)
    stats = await wait_for_webhooks(
        bench, base, base + count, paid, stall=10.0 if options.quick else 20.0, bound=bound
    )
    after = bench.meter.snapshot()
    cores = CpuMeter.cores(before, after)
    wall = after.wall - before.wall
    # The tool is the client here: its CPU goes where the load generator's would.
    cores["loadgen"] = round(client_cpu / wall, 2) if wall > 0 else None
    webhooks_wall = (stats.last_ns - started_ns) / 1e9 if stats.last_ns else None
    tool_time = SUMMARY_TIME.search(output)
    return {
        "rows": count,
        "concurrency": IMPORT_CONCURRENCY,
        "command": " ".join(argv),
        "exit_code": code,
        "timed_out": timed_out,
        "command_wall_s": round(command_wall, 3),
        "tool_reported_s": float(tool_time.group(1)) if tool_time else None,
        "outcomes": dict(outcomes),
        "rows_paid": paid,
        "rows_per_s": round(paid / command_wall, 1) if command_wall > 0 else None,
        "webhooks_received": stats.unique_orders,
        "webhook_deliveries": stats.received,
        "webhooks_wall_s": round(webhooks_wall, 3) if webhooks_wall is not None else None,
        "all_paid": paid == count and code == 0,
        "all_webhooks_received": stats.unique_orders == paid == count,
        "client_cpu_s": round(client_cpu, 2),
        "output_tail": output[-OUTPUT_TAIL:],
        "cpu_cores": with_other({k: v for k, v in cores.items() if k != "other"}),
    }
