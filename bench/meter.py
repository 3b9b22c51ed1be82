"""Who used the CPUs during a phase, in cores (CPU seconds per second), and peak memory."""

from __future__ import annotations

import contextlib
import resource
import time
from pathlib import Path

import psutil


def tree_cpu_s(pid: int) -> float:
    """CPU time of a process, its live descendants, and the children they reaped."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
    return total


def peak_rss_mb(pid: int) -> float:
    """The kernel's high-water mark of the process's resident memory (VmHWM), over its life."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


class Meter:
    """client: this process and the children it reaped (pgbench, the import tool); service,
    postgres, stub: their process trees; other: the rest of the machine; all: the machine."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.start()

    def _sample(self) -> dict[str, float | None]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = {"client": time.process_time() + children.ru_utime + children.ru_stime}
        return cpu | {part: pid and tree_cpu_s(pid) for part, pid in self.pids.items()}

    def start(self) -> None:
        psutil.cpu_percent()  # the machine's use is measured from this call to the next
        self.started, self.before = time.perf_counter(), self._sample()

    def cores(self) -> dict[str, float | None]:
        """Cores used since start(); none for a phase too short to tell."""
        wall, after = time.perf_counter() - self.started, self._sample()
        if wall < 0.5:
            return {}
        machine = psutil.cpu_percent() / 100 * (psutil.cpu_count() or 1)
        cores: dict[str, float | None] = {}
        for part, end in after.items():
            start = self.before[part]
            cores[part] = None if start is None or end is None else round((end - start) / wall, 2)
        cores["other"] = round(max(0.0, machine - sum(v or 0.0 for v in cores.values())), 2)
        return cores | {"all": round(machine, 2)}
