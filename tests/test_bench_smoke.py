"""The benchmark keeps working: `python -m bench --quick` runs every phase at tiny sizes.

No timing is asserted (the numbers of a smoke run mean nothing); what is asserted is what a
broken benchmark or service would get wrong: every payment paid and its webhook received, the
ratio computed from the two figures it relates, every phase in the table and the JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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

    webhook = phases["webhook_latency"]
    assert webhook["paid"] == webhook["webhooks"] == webhook["matched"] == 400, webhook
    assert webhook["p50_ms"] <= webhook["p99_ms"], webhook

    imported = phases["import_rows"]
    assert imported["exit_code"] == 0 and imported["outcomes"] == {"paid": 200}, imported
    assert imported["webhooks"] == 200, imported

    peaks = [value for key, value in phases["memory"].items() if key.endswith("_peak_rss_mb")]
    assert len(peaks) >= 2 and all(20 < mb < 2000 for mb in peaks), peaks  # granian main, worker
