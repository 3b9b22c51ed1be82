"""Child processes: start, stop within a bound, and read their memory and CPU use."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop when installed (the service's own loop), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.run(main)
    return uvloop.run(main)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Child:
    """A process this benchmark started, with its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, **popen: Any) -> None:
        self.name = name
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            list(argv),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal reaches only the benchmark,
            # which then stops its children in order.
            start_new_session=True,
            **popen,
        )
        self._known: dict[int, psutil.Process] = {}

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tree(self) -> list[psutil.Process]:
        """The process and its descendants (remembered, so stop() can reach them all)."""
        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        for process in processes:
            self._known.setdefault(process.pid, process)
        return processes

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL it and any descendant left."""
        self.tree()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for process in self._known.values():
            if process.pid == self.pid:
                continue
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.is_running():
                    process.wait(min(timeout, 5.0))
            with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
                if process.is_running():
                    process.kill()
        self._log_file.close()
        return self.process.returncode


def _status_kb(pid: int, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def reset_peak_rss(pid: int) -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of a process; False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_kb(pid: int) -> int | None:
    return _status_kb(pid, "VmHWM")


def rss_kb(pid: int) -> int | None:
    return _status_kb(pid, "VmRSS")


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time of a process, its live descendants and the children it has reaped."""
    if pid is None:
        return None
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total: float = times.user + times.system + times.children_user + times.children_system
        children = root.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return total


def describe(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        cmdline = process.cmdline()
        return " ".join(
            os.path.basename(part) if i == 0 else part for i, part in enumerate(cmdline)
        )
    return str(process.pid)


def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
