"""Relays in processes of their own beside `payments serve`'s HTTP workers (`--relays N`).

A relay inside an HTTP worker shares that worker's core of Python with the requests; a
relay process takes a core of its own, if there is one to take. On a 2-core machine
neither won outright (README, Performance), so `payments serve` runs one only where the
machine has cores beyond the workers' (relay_processes_for). It runs them as
`python -m service.outbox` children, restarts one that fails (with backoff), and stops
them after the workers.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from service.backoff import Backoff

log = logging.getLogger(__name__)
# The workers read this: relays run beside them, not inside them (service/settings.py).
IN_PROCESS_RELAY_VARIABLE = "PAYMENTS_OUTBOX_RELAY_IN_PROCESS"
RESTART_MIN_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0
STOP_SECONDS = 20.0  # a relay finishes its in-flight sends and releases its claims


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container's limit sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def relay_processes_for(workers: int, cores: int) -> int:
    """`payments serve`'s default number of relay processes ([server] relay_processes =
    "auto"): one, where the machine has a core beyond the workers' and one more (for
    PostgreSQL, or whatever else runs there); none, a relay inside each worker, where it
    has not: there a relay process only takes its core from the workers or PostgreSQL."""
    return 1 if cores >= workers + 2 else 0


class RelayProcesses:
    """`count` relay processes, kept running until `stop()`."""

    def __init__(self, count: int, command: Sequence[str] | None = None) -> None:
        self._command = list(command or [sys.executable, "-m", "service.outbox"])
        self._children: list[subprocess.Popen[bytes] | None] = [None] * count
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="relay processes", daemon=True)

    def start(self) -> RelayProcesses:
        for slot in range(len(self._children)):
            self._children[slot] = subprocess.Popen(self._command)
        self._watcher.start()
        return self

    def _watch(self) -> None:
        restarts = [Backoff(RESTART_MIN_SECONDS, RESTART_MAX_SECONDS) for _ in self._children]
        while not self._stopping.wait(RESTART_MIN_SECONDS):
            for slot, child in enumerate(self._children):
                # 0: stopped as asked (SIGINT or SIGTERM reach the whole process group).
                if child is None or child.poll() in (None, 0):
                    continue
                delay = restarts[slot].failed()
                log.error(
                    "relay process %d failed (%s); restarting in %.1fs",
                    child.pid,
                    child.returncode,
                    delay,
                )
                if self._stopping.wait(delay):
                    return
                self._children[slot] = subprocess.Popen(self._command)

    def stop(self) -> None:
        """SIGTERM each (a graceful stop), then SIGKILL what is still running after a bound."""
        self._stopping.set()
        if self._watcher.is_alive():
            self._watcher.join()
        children = [child for child in self._children if child is not None]
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for child in children:
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
