"""Optional: py-spy samples of the service worker during one phase, summarised.

`python -m bench --profile DIR` records the worker (the granian process that runs the
app) during create at concurrency 64 and writes the collapsed stacks (`create64.txt`, for
flamegraph tools or speedscope) plus a summary of where the time went.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.stack import Stack

RATE = 100  # samples per second: enough for a summary, light on a 2-core machine
TOP = 25


def _py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, executable: str, directory: Path, pid: int) -> None:
        self.executable = executable
        self.directory = directory
        self.pid = pid
        self.output = directory / "create64.txt"
        self._process: asyncio.subprocess.Process | None = None

    @classmethod
    def start(cls, directory: Path | None, stack: Stack, duration: float) -> Profiler | None:
        """A profiler for the service worker, or None (not asked for, or no py-spy)."""
        if directory is None:
            return None
        executable = _py_spy()
        if executable is None:
            print("[bench] --profile: py-spy is not installed; not profiling", file=sys.stderr)
            return None
        assert stack.service is not None
        tree = stack.service.child.tree()
        worker = tree[-1].pid  # the last descendant: the granian worker running the app
        directory.mkdir(parents=True, exist_ok=True)
        return cls(executable, directory, worker)

    async def begin(self, duration: float) -> None:
        self._process = await asyncio.create_subprocess_exec(
            self.executable,
            "record",
            "--pid",
            str(self.pid),
            "--rate",
            str(RATE),
            "--nonblocking",
            "--format",
            "raw",
            "--duration",
            str(max(1, round(duration))),
            "--output",
            str(self.output),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )

    async def finish(self) -> dict[str, Any]:
        if self._process is None:
            return {"error": "not started"}
        _, stderr = await asyncio.wait_for(self._process.communicate(), 120)
        if self._process.returncode != 0 or not self.output.exists():
            return {"error": stderr.decode(errors="replace")[-500:]}
        summary = summarise(self.output.read_text())
        (self.directory / "create64-summary.txt").write_text(format_summary(summary))
        return {"pid": self.pid, "stacks": str(self.output), **summary}


def _where(frame: str) -> tuple[str, str]:
    """(function, short path) of a py-spy raw frame: "function (path/to/file.py:123)"."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/", "lib/python3.12/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return name, path


def _package(path: str) -> str:
    """The layer a file belongs to: service, litestar, asyncpg, asyncio, ..."""
    head = path.split("/", 1)[0]
    return head.removesuffix(".py") if "/" in path or path.endswith(".py") else path


def summarise(collapsed: str) -> dict[str, Any]:
    """Where the worker's time went, as shares of all samples.

    self_by_layer: the package of the innermost Python frame (time in C/Rust extensions,
    e.g. granian's HTTP stack, uvloop or asyncpg's protocol, counts for the Python frame
    that called into it); self: innermost functions; inclusive: functions on the stack,
    leaving out the frames present in nearly every sample (process start-up, event loop).
    """
    own: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_where(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        name, path = frames[-1]
        own[f"{name} ({path})"] += count
        layers[_package(path)] += count
        for frame_name, frame_path in set(frames):
            inclusive[f"{frame_name} ({frame_path})"] += count
    if total == 0:
        return {"samples": 0, "self_by_layer": [], "self": [], "inclusive": []}
    deepest_root = max(inclusive.values())
    below_roots = Counter({k: v for k, v in inclusive.items() if v < 0.9 * deepest_root})

    def top(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * count / total, 1)) for name, count in counter.most_common(TOP)]

    return {
        "samples": total,
        "self_by_layer": top(layers),
        "self": top(own),
        "inclusive": top(below_roots),
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"samples: {summary['samples']}", "", "self time by layer (% of samples):"]
    lines += [f"  {share:5.1f}  {name}" for name, share in summary["self_by_layer"]]
    lines += ["", "self time (% of samples):"]
    lines += [f"  {share:5.1f}  {name}" for name, share in summary["self"]]
    lines += ["", "inclusive time (% of samples):"]
    lines += [f"  {share:5.1f}  {name}" for name, share in summary["inclusive"]]
    return "\n".join(lines) + "\n"
