"""The service as a child process: started as in production, killed like a crash.

`payments serve` (granian) runs the app in a worker process of its own, so the
service runs in a session of its own and a kill reaches the whole process group:
nothing of the killed service survives to release a claim or finish a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import httpx

from tests.support.paths import PROJECT_ROOT

# Started exactly as the console script `payments` starts it.
PAYMENTS = [sys.executable, "-c", "from service.cli import main; main()"]


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without settings of the service's (PAYMENTS_*, LITESTAR_*), plus
    `settings`: a process a test starts gets only those the test gives it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYMENTS_", "LITESTAR_"))}
    return env | settings


def service_env(config: Path, database_url: str, order_service_url: str) -> dict[str, str]:
    """clean_env() plus the test's settings."""
    env = clean_env()
    env.update(
        PAYMENTS_CONFIG=str(config),
        PAYMENTS_DATABASE_URL=database_url,
        PAYMENTS_ORDER_SERVICE_URL=order_service_url,
        PYTHONPATH=str(PROJECT_ROOT),
    )
    return env


def _has_exited(pid: int) -> bool:
    """Whether the child exited, without reaping it (its pid, hence its group id, stays ours)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


class ServiceProcess:
    """`payments serve --host 127.0.0.1 --port PORT` (or `argv` then `--port PORT`),
    restartable on the same port."""

    def __init__(
        self,
        *,
        port: int,
        env: dict[str, str],
        log: Path,
        argv: Sequence[str] = (*PAYMENTS, "serve", "--host", "127.0.0.1"),
    ) -> None:
        self.argv = [*argv, "--port", str(port)]
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = env
        self.log = log
        self.starts = 0
        self.kills = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        """The pid of `payments serve` itself (granian's main process)."""
        assert self._process is not None, "the service was never started"
        return self._process.pid

    @property
    def running(self) -> bool:
        process = self._process
        return process is not None and process.returncode is None and not _has_exited(process.pid)

    def start(self) -> None:
        assert not self.running, "the service is already running"
        self._log_file = self.log.open("ab")
        self._process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1

    async def wait_ready(self, within: float = 60.0) -> float:
        """Seconds until /health/ready answers 200; fails if the process dies or it takes longer."""
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() - started < within:
                if not self.running:
                    raise AssertionError(f"the service exited while starting:\n{self.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health/ready")).status_code == 200:
                        return time.monotonic() - started
                await asyncio.sleep(0.05)
        raise AssertionError(f"the service was not ready within {within}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL the service and its workers at once: a crash, nothing cleaned up."""
        process = self._process
        assert process is not None
        # The leader is not reaped yet, so its group id cannot belong to anyone else.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        self.kills += 1
        self._close_log()

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (granian stops its workers), then SIGKILL whatever is left of the group."""
        process = self._process
        if process is None:
            return None
        if process.returncode is None:
            if not _has_exited(process.pid):
                process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while not _has_exited(process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        self._close_log()
        return process.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
