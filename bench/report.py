"""The results: a table on stdout, the issue's targets with a pass/miss mark, and JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The targets. Information only: the benchmark never fails on them.
CREATE_RATIO_TARGET = 0.5
BULK_SECONDS_TARGET = 10.0
WEBHOOK_P50_MS_TARGET = 5.0
WEBHOOK_P99_MS_TARGET = 50.0
RSS_MB_TARGET = 150.0


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    goal: str
    value: str
    met: bool | None  # None: not measurable in this run

    @property
    def mark(self) -> str:
        return "n/a" if self.met is None else ("pass" if self.met else "MISS")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "goal": self.goal, "value": self.value, "met": self.met}


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def targets(phases: dict[str, Any]) -> list[Target]:
    ratio = _get(phases, "create", "ratio_to_limit_at_64")
    bulk = phases.get("bulk", {})
    bulk_wall = bulk.get("webhooks_wall_s")
    bulk_met = None
    if bulk:
        bulk_met = bool(
            bulk.get("all_webhooks_received")
            and bulk_wall is not None
            and bulk_wall <= BULK_SECONDS_TARGET
        )
    bulk_value = (
        f"{bulk.get('payments_ok')} paid in {bulk.get('payments_wall_s')} s, "
        f"{bulk.get('webhooks_received')} webhooks in {bulk_wall} s"
        if bulk
        else "-"
    )
    latency = _get(phases, "webhook", "commit_to_receipt_ms") or {}
    has_latency = bool(latency.get("count"))
    peak = _get(phases, "memory", "max_peak_rss_mb")
    return [
        Target(
            "create throughput at 64",
            f">= {CREATE_RATIO_TARGET} x pgbench",
            f"{ratio:.2f} x" if ratio is not None else "-",
            ratio >= CREATE_RATIO_TARGET if ratio is not None else None,
        ),
        Target(
            "bulk: payments + webhooks",
            f"<= {BULK_SECONDS_TARGET:g} s, all received",
            bulk_value,
            bulk_met,
        ),
        Target(
            "webhook latency p50",
            f"<= {WEBHOOK_P50_MS_TARGET:g} ms",
            f"{latency['p50']:.1f} ms" if has_latency else "no webhooks",
            latency["p50"] <= WEBHOOK_P50_MS_TARGET if has_latency else None,
        ),
        Target(
            "webhook latency p99",
            f"<= {WEBHOOK_P99_MS_TARGET:g} ms",
            f"{latency['p99']:.1f} ms" if has_latency else "no webhooks",
            latency["p99"] <= WEBHOOK_P99_MS_TARGET if has_latency else None,
        ),
        Target(
            "peak RSS per service process",
            f"<= {RSS_MB_TARGET:g} MB",
            f"{peak:.1f} MB" if peak is not None else "-",
            peak <= RSS_MB_TARGET if peak is not None else None,
        ),
    ]


def _cores(cores: dict[str, Any] | None) -> str:
    if not cores:
        return ""

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    parts = ("loadgen", "service", "postgres", "stub", "other", "machine")
    values = [show(cores.get(part)) for part in parts]
    return " ".join(f"{value:>5}" for value in values[:-1]) + f" | {values[-1]:>4}"


def _load_row(result: dict[str, Any]) -> str:
    latency = result["latency_ms"]
    failed = result["requests"] - result["ok"] + result.get("dropped", 0)
    text = f"{result['ok_per_s']:,.0f}/s  p50 {latency['p50']:.1f} ms  p99 {latency['p99']:.1f} ms"
    if failed:
        text += f"  ({failed} not ok: {result['statuses']}"
        text += f", {result['failures']} network errors" if result["failures"] else ""
        text += f", {result['dropped']} dropped" if result.get("dropped") else ""
        text += ")"
    return text


def _import_row(imported: dict[str, Any]) -> tuple[str, str, str]:
    text = (
        f"exit {imported['exit_code']}"
        + (" (timed out)" if imported["timed_out"] else "")
        + f"; {imported['rows_paid']:,} paid in {imported['command_wall_s']} s "
        f"({imported['rows_per_s']}/s, tool's timer {imported['tool_reported_s']} s); "
        f"{imported['webhooks_received']:,} webhooks, "
        f"last at {imported['webhooks_wall_s']} s"
    )
    label = f"7 import {imported['rows']:,} rows c={imported['concurrency']}"
    return label, text, _cores(imported["cpu_cores"])


def rows(phases: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(phase, result, CPU cores by part) lines of the table."""
    out: list[tuple[str, str, str]] = []
    limit = phases.get("limit", {})
    for run in limit.get("runs", []):
        text = f"{run['payments_per_s']:,.0f} payments/s  avg {run['latency_avg_ms']} ms"
        if run.get("error"):
            text += f"  (pgbench: {run['error'].splitlines()[0][:60]})"
        out.append((f"1 limit: pgbench c={run['concurrency']}", text, _cores(run["cpu_cores"])))
    if what_if := limit.get("without_notify"):
        out.append(
            (
                "  what-if: same SQL minus pg_notify, c=64",
                f"{what_if['payments_per_s']:,.0f} payments/s  avg {what_if['latency_avg_ms']} ms",
                _cores(what_if["cpu_cores"]),
            )
        )
    create = phases.get("create", {})
    for run in create.get("runs", []):
        out.append((f"2 create c={run['concurrency']}", _load_row(run), _cores(run["cpu_cores"])))
    if create.get("ratio_to_limit_at_64") is not None:
        out.append(("  create/limit at c=64", f"{create['ratio_to_limit_at_64']:.2f} x", ""))
    for name in ("by_id", "by_order"):
        if run := _get(phases, "read", name):
            label = "GET /payments/{id}" if name == "by_id" else "GET /payments/order/{order_id}"
            out.append((f"3 read c=64 {label}", _load_row(run), _cores(run["cpu_cores"])))
    if bulk := phases.get("bulk"):
        out.append(
            (
                f"4 bulk {bulk['orders']:,} orders c=64",
                f"{bulk['payments_ok']:,} paid in {bulk['payments_wall_s']} s "
                f"({bulk['payments_per_s']}/s); {bulk['webhooks_received']:,} webhooks, "
                f"last at {bulk['webhooks_wall_s']} s",
                _cores(bulk["cpu_cores"]),
            )
        )
    if hook := phases.get("webhook"):
        latency = hook["commit_to_receipt_ms"]
        out.append(
            (
                f"5 webhook latency at {hook['rate_per_s']:g}/s",
                f"commit->receipt p50 {latency['p50']:.1f} ms  p99 {latency['p99']:.1f} ms  "
                f"max {latency['max']:.1f} ms ({hook['webhooks_received']}/"
                f"{hook['payments_ok']} received)",
                _cores(hook["cpu_cores"]),
            )
        )
        create = hook["create"]["latency_ms"]
        out.append(
            (
                "  create latency at that rate",
                f"p50 {create['p50']:.1f} ms  p99 {create['p99']:.1f} ms",
                "",
            )
        )
    if memory := phases.get("memory"):
        for process in memory["processes"]:
            out.append(
                (
                    f"6 memory: {process['role']} (pid {process['pid']})",
                    f"peak RSS {process['peak_rss_mb']} MB during bulk",
                    "",
                )
            )
    if imported := phases.get("import"):
        out.append(_import_row(imported))
    return out


def render(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"Payment service benchmark, {report['started_at']}"
        + ("  [--quick: smoke sizes, not a measurement]" if report["options"]["quick"] else ""),
        f"machine: {machine['cpu_model']}, {machine['nproc']} CPUs, "
        f"{machine['memory_mb']} MB RAM, Linux {machine['kernel']}, Python {machine['python']}, "
        f"PostgreSQL {machine['postgresql']}, granian {machine['granian']}, "
        f"{machine['service_workers']} service worker(s); other processes' load: "
        f"{machine.get('load_before_start_cores')} cores before start, "
        f"{machine.get('other_load_mean_cores')} on average during the phases",
        "",
    ]
    table = rows(report["phases"])
    header = ("phase", "result", "CPU cores: client service postgres stub other | all")
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(2)]
    for phase, result, cores in [header, *table]:
        lines.append(f"{phase:<{widths[0]}}  {result:<{widths[1]}}  {cores}".rstrip())
    lines += ["", "Targets (issue 5; information only, never asserted):"]
    target_rows = [(t.name, t.goal, t.value, t.mark) for t in report_targets(report)]
    tw = [max(len(row[i]) for row in target_rows) for i in range(3)]
    for name, goal, value, mark in target_rows:
        lines.append(f"  {name:<{tw[0]}}  {goal:<{tw[1]}}  {value:<{tw[2]}}  {mark}")
    lines += ["", *report.get("notes", [])]
    return "\n".join(lines)


def report_targets(report: dict[str, Any]) -> list[Target]:
    return [Target(**target) for target in report["targets"]]


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
