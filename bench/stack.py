"""Everything the benchmark runs against: PostgreSQL, the Order Service stub, the service.

The service starts exactly as in production (`payments serve`, granian) with its
configuration in a TOML file and the PAYMENTS_* environment variables.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType

import msgspec

from bench.database import Postgres
from bench.load import Target, build_request, request_once
from bench.order_stub import Record, Stats
from bench.procs import Child, free_port

# The repository root: `python -m bench.order_stub` runs from there.
BENCH_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# Production-like: webhooks are signed (the key is the benchmark's own, not a secret).
WEBHOOK_SECRET = "whsec_YmVuY2htYXJrLW9ubHktc2lnbmluZy1rZXktMDAwMDAwMDA="
BENCH_TOML = """\
# Written by the benchmark (bench/). Everything not set here keeps its default
# (litestar.toml), the outbox settings included.
[server]
host = "127.0.0.1"
workers = {workers}

[gateway]
# No reconciliation during a run: every payment is settled by its own request.
reconcile_after_seconds = 86400.0
"""


class BenchError(RuntimeError):
    """The environment could not be set up."""


def payments_command() -> list[str]:
    """The `payments` console script next to this interpreter (the same venv)."""
    script = Path(sys.executable).with_name("payments")
    if script.exists():
        return [str(script)]
    found = shutil.which("payments")
    if found:
        return [found]
    return [sys.executable, "-c", "from service.cli import main; main()"]


class OrderStub:
    def __init__(self, child: Child, target: Target) -> None:
        self.child = child
        self.target = target

    @property
    def url(self) -> str:
        return f"http://{self.target.authority}"

    async def _get(self, path: str) -> bytes:
        response = await request_once(self.target, build_request(self.target, "GET", path))
        if response.status != 200:
            raise BenchError(f"order stub answered {response.status} to {path}")
        return response.body

    async def stats(self, lo: int, hi: int) -> Stats:
        return msgspec.json.decode(await self._get(f"/stats?lo={lo}&hi={hi}"), type=Stats)

    async def records(self, lo: int, hi: int) -> list[Record]:
        return msgspec.json.decode(await self._get(f"/records?lo={lo}&hi={hi}"), type=list[Record])


class Readiness(msgspec.Struct):
    status: str
    outbox_pending: int | None = None


class Service:
    def __init__(self, child: Child, target: Target) -> None:
        self.child = child
        self.target = target

    async def readiness(self) -> Readiness | None:
        try:
            response = await request_once(
                self.target, build_request(self.target, "GET", "/health/ready")
            )
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return None
        if response.status != 200:
            return None
        return msgspec.json.decode(response.body, type=Readiness)


async def _wait_listening(child: Child, probe: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not child.alive():
            raise BenchError(f"{what} exited with {child.process.returncode}:\n{child.tail()}")
        try:
            if await probe():
                return
        except (OSError, TimeoutError, asyncio.IncompleteReadError, BenchError):
            pass
        await asyncio.sleep(0.1)
    raise BenchError(f"{what} not ready after {START_TIMEOUT:.0f} s:\n{child.tail()}")


class Stack:
    """Starts everything in `__aenter__`, stops it all (in reverse) in `__aexit__`."""

    def __init__(self, database_url: str | None, workers: int) -> None:
        self._database_url = database_url
        self.workers = workers
        self.tmp = Path(tempfile.mkdtemp(prefix="payments-bench-"))
        self.postgres: Postgres | None = None
        self.payments_url = ""
        self.limit_url = ""
        self.stub: OrderStub | None = None
        self.service: Service | None = None
        self.config = self.tmp / "bench.toml"

    def _env(self, database_url: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PAYMENTS_")}
        stub_url = self.stub.url if self.stub else "http://127.0.0.1:9"
        env.update(
            PAYMENTS_CONFIG=str(self.config),
            PAYMENTS_DATABASE_URL=database_url,
            PAYMENTS_ORDER_SERVICE_URL=stub_url,
            PAYMENTS_WEBHOOK_SECRET=WEBHOOK_SECRET,
        )
        return env

    def _migrate(self, database_url: str) -> None:
        completed = subprocess.run(
            [*payments_command(), "db", "migrate"],
            env=self._env(database_url),
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
        if completed.returncode != 0:
            raise BenchError(f"payments db migrate failed:\n{completed.stdout}{completed.stderr}")

    async def __aenter__(self) -> Stack:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def _start(self) -> None:
        self.config.write_text(BENCH_TOML.format(workers=self.workers))
        if self._database_url:
            self.postgres = Postgres(self._database_url)
            suffix = f"_bench_{os.getpid()}"
        else:
            self.postgres = await asyncio.to_thread(Postgres.embedded, self.tmp)
            suffix = ""
        self.payments_url = self.postgres.create_database("payments" + suffix)
        self.limit_url = self.postgres.create_database("payments_limit" + suffix)
        for url in (self.payments_url, self.limit_url):
            await asyncio.to_thread(self._migrate, url)

        stub_target = Target("127.0.0.1", free_port())
        stub_child = Child(
            "order stub",
            [sys.executable, "-m", "bench.order_stub", "--port", str(stub_target.port)],
            self.tmp / "order_stub.log",
            cwd=BENCH_ROOT,
        )
        self.stub = stub = OrderStub(stub_child, stub_target)

        async def stub_up() -> bool:
            await stub.stats(0, 1)
            return True

        await _wait_listening(stub_child, stub_up, "the order stub")

        target = Target("127.0.0.1", free_port())
        argv = [*payments_command(), "serve", "--host", target.host, "--port", str(target.port)]
        argv += ["--workers", str(self.workers)]
        child = Child(
            "service",
            argv,
            self.tmp / "service.log",
            env=self._env(self.payments_url),
            cwd=self.tmp,
        )
        self.service = service = Service(child, target)

        async def service_ready() -> bool:
            readiness = await service.readiness()
            return readiness is not None and readiness.status == "ready"

        await _wait_listening(child, service_ready, "the service")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the service, then the stub, then PostgreSQL; delete the temp directory."""
        for part in (self.service, self.stub):
            if part is not None:
                code = await asyncio.to_thread(part.child.stop, STOP_TIMEOUT)
                if code not in (0, None, -15):
                    print(f"note: {part.child.name} exited with {code}")
        self.service = self.stub = None
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.close)
            self.postgres = None
        shutil.rmtree(self.tmp, ignore_errors=True)
