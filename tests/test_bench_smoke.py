"""The benchmark keeps working: `python -m bench --quick` runs every phase at tiny sizes.

Asserted is what a broken benchmark or service would get wrong: every payment paid and its
webhook received, the ratios computed from the two figures they relate, every phase in the
table and the JSON. And one performance gate, as pgqueuer keeps one in CI: the batch's
creates per second over pgbench's payments per second, measured in the same run (so a
slower or busier machine moves both), must stay above half the lowest such ratio the
README's performance table reports. Half: a smoke run's one call is noisy, and only a
regression of that size is worth failing CI for. No other figure is asserted.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The README's performance table: the batch row and its ratios to pgbench, in bold.
BATCH_ROW = "| batch: 10,000 orders"
RATIO = re.compile(r"\*\*([0-9.]+) \u00d7\*\*")  # "**1.9 x**", with the times sign


def readme_batch_ratio() -> float:
    """The lowest batch ratio to pgbench the README reports."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [row] = [line for line in readme.splitlines() if line.startswith(BATCH_ROW)]
    ratios = [float(value) for value in RATIO.findall(row)]
    assert ratios, f"no bold ratio in the README's batch row: {row}"
    return min(ratios)


@pytest.mark.slow
def test_quick_benchmark_runs_every_phase(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:] + completed.stdout[-4000:]
    phases = json.loads(out.read_text())["phases"]
    assert list(phases) == [
        "limit",
        "create",
        "bulk",
        "batch",
        "webhook_latency",
        "import_rows",
        "memory",
    ]
    for phase in phases.values():
        assert phase["label"] in completed.stdout

    limit, create = phases["limit"]["payments_per_s"], phases["create"]
    assert create["ratio_to_limit"] == pytest.approx(create["per_s"] / limit, abs=1e-3)
    assert create["errors"] == 0 and set(create["statuses"]) == {"201"}, create

    bulk = phases["bulk"]
    assert bulk["orders"] == 200 and bulk["calls"]["ok"] == 200, bulk
    assert bulk["webhooks"] == 200 and bulk["last_webhook_s"] > 0, bulk

    batch = phases["batch"]
    assert batch["orders"] == 200 and batch["calls"]["ok"] == 1, batch  # 200 orders, one call
    assert batch["webhooks"] == 200 and batch["creates_per_s"] > 0, batch
    assert batch["ratio_to_limit"] == pytest.approx(batch["creates_per_s"] / limit, abs=1e-3)
    floor = readme_batch_ratio() / 2
    assert batch["ratio_to_limit"] >= floor, (
        f"the batch ran at {batch['ratio_to_limit']} times pgbench, below half the README's "
        f"figure ({floor:.2f}): a performance regression (or a machine too busy to tell)"
    )

    webhook = phases["webhook_latency"]
    assert webhook["paid"] == webhook["webhooks"] == webhook["matched"] == 400, webhook
    assert webhook["p50_ms"] <= webhook["p99_ms"], webhook

    imported = phases["import_rows"]
    assert imported["exit_code"] == 0 and imported["outcomes"] == {"paid": 200}, imported
    assert imported["webhooks"] == 200, imported

    peaks = [value for key, value in phases["memory"].items() if key.endswith("_peak_rss_mb")]
    assert len(peaks) >= 2 and all(20 < mb < 2000 for mb in peaks), peaks  # granian main, worker
