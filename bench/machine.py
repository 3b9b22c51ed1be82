"""The machine the benchmark ran on, and who used its CPUs during each phase."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench.procs import cpu_seconds


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info(postgres_version: str, workers: int) -> dict[str, object]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_mb": _memory_mb(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": postgres_version,
        "granian": _version("granian"),
        "litestar": _version("litestar"),
        "asyncpg": _version("asyncpg"),
        "service_workers": workers,
    }


def _machine_busy() -> tuple[float, float]:
    """Seconds of busy and total CPU time across all CPUs since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(value) for value in fields[:8]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    wall: float
    loadgen: float
    service: float | None
    stub: float | None
    postgres: float | None
    machine_busy: float
    machine_total: float


class CpuMeter:
    """CPU seconds used by each part between two snapshots, shown as cores (CPU-s per s)."""

    def __init__(self, service: int | None, stub: int | None, postgres: int | None) -> None:
        self.pids = {"service": service, "stub": stub, "postgres": postgres}

    def snapshot(self) -> CpuSnapshot:
        busy, total = _machine_busy()
        return CpuSnapshot(
            wall=time.perf_counter(),
            loadgen=time.process_time(),
            service=cpu_seconds(self.pids["service"]),
            stub=cpu_seconds(self.pids["stub"]),
            postgres=cpu_seconds(self.pids["postgres"]),
            machine_busy=busy,
            machine_total=total,
        )

    @staticmethod
    def cores(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float | None]:
        """Average cores busy per part over the interval (1.0 = one CPU fully used)."""
        wall = after.wall - before.wall
        if wall <= 0:
            return {}

        def share(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) / wall, 2)

        ncpu = os.cpu_count() or 1  # /proc/stat counts every CPU of the machine
        machine_total = after.machine_total - before.machine_total
        machine = (
            round((after.machine_busy - before.machine_busy) / machine_total * ncpu, 2)
            if machine_total > 0
            else None
        )
        cores: dict[str, float | None] = {
            "loadgen": share(before.loadgen, after.loadgen),
            "service": share(before.service, after.service),
            "postgres": share(before.postgres, after.postgres),
            "stub": share(before.stub, after.stub),
            "machine": machine,
        }
        return with_other(cores)


def with_other(cores: dict[str, float | None]) -> dict[str, float | None]:
    """Adds "other": machine-wide CPU use not accounted to any part (other processes)."""
    machine = cores.get("machine")
    if machine is None:
        return cores
    known = sum(value or 0.0 for key, value in cores.items() if key not in ("machine", "other"))
    return {**cores, "other": round(max(0.0, machine - known), 2)}


def background_load(seconds: float = 1.0) -> float:
    """Cores busy on the whole machine over `seconds`, before the benchmark starts anything."""
    busy_before, total_before = _machine_busy()
    time.sleep(seconds)
    busy_after, total_after = _machine_busy()
    total = total_after - total_before
    ncpu = os.cpu_count() or 1
    return round((busy_after - busy_before) / total * ncpu, 2) if total > 0 else 0.0
