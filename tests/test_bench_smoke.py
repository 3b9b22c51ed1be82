"""The benchmark keeps working: `python -m bench --quick` runs every phase at tiny size.

No timing is asserted (the targets are the benchmark's business, printed, never tested);
only that each phase measured something and that every bulk payment, and every row of the
import (`payments import`), got its webhook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_SECONDS = 600


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0


@pytest.mark.slow
def test_quick_benchmark_runs_every_phase(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    argv = [sys.executable, "-m", "bench", "--quick", "--out", str(out)]
    if url := os.environ.get("PAYMENTS_TEST_DATABASE_URL"):
        argv += ["--database-url", url]  # the same server the other tests use
    completed = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
    )
    assert completed.returncode == 0, completed.stderr[-4000:] + completed.stdout[-4000:]
    report = json.loads(out.read_text())
    phases = report["phases"]

    limit = phases["limit"]
    assert [run["concurrency"] for run in limit["runs"]] == [1, 16, 64]
    what_if = [limit["without_notify"]] if limit["without_notify"] else []
    for run in [*limit["runs"], *what_if]:
        assert _positive(run["payments_per_s"]), run

    create = phases["create"]
    assert [run["concurrency"] for run in create["runs"]] == [1, 16, 64]
    for run in create["runs"]:
        assert _positive(run["ok_per_s"]), run
        assert _positive(run["latency_ms"]["p50"]) and _positive(run["latency_ms"]["p99"]), run
    assert _positive(create["ratio_to_limit_at_64"])

    for name in ("by_id", "by_order"):
        run = phases["read"][name]
        assert _positive(run["ok_per_s"]) and _positive(run["latency_ms"]["p99"]), run

    bulk = phases["bulk"]
    assert bulk["payments_ok"] == bulk["orders"] > 0, bulk
    assert bulk["webhooks_received"] == bulk["payments_ok"], bulk
    assert _positive(bulk["payments_wall_s"]) and _positive(bulk["webhooks_wall_s"]), bulk

    webhook = phases["webhook"]
    assert _positive(webhook["payments_ok"]) and _positive(webhook["webhooks_received"]), webhook
    assert webhook["transaction_id_mismatches"] == 0, webhook
    latency = webhook["commit_to_receipt_ms"]
    assert _positive(latency["count"]) and _positive(latency["p50"]), latency

    imported = phases["import"]
    assert imported["exit_code"] == 0 and not imported["timed_out"], imported
    assert imported["rows_paid"] == imported["rows"] > 0, imported
    assert imported["outcomes"] == {"paid": imported["rows"]}, imported
    assert imported["webhooks_received"] == imported["rows"], imported
    assert _positive(imported["command_wall_s"]) and _positive(imported["webhooks_wall_s"])

    memory = phases["memory"]
    assert memory["processes"] and _positive(memory["max_peak_rss_mb"]), memory

    assert len(report["targets"]) == 5
    assert report["machine"]["postgresql"]
