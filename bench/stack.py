"""What the benchmark runs against, stopped in reverse order however the run ends: PostgreSQL
(tests/support/postgres.py), the stub, the service as in production (tests/support/processes.py)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from service.db.migrate import migrate
from tests.support.postgres import TestPostgres
from tests.support.processes import ServiceProcess, service_env
from tests.support.service import free_port

ROOT = Path(__file__).resolve().parents[1]
# Webhooks are signed, as in production (the benchmark's own key, not a secret).
WEBHOOK_SECRET = "whsec_YmVuY2htYXJrLW9ubHktc2lnbmluZy1rZXktMDAwMDAwMDA="
# No reconciliation: each payment is settled by its own request.
CONFIG = (
    "[server]\nworkers = {workers}\nrelay_processes = {relays}\n"
    "[gateway]\nreconcile_after_seconds = 86400.0\n"
)


@dataclass(frozen=True)
class Stack:
    tmp: Path
    service: ServiceProcess
    stub_url: str
    limit_url: str  # a database of its own for pgbench
    pids: dict[str, int | None]  # service (granian's main), postgres (None: not embedded), stub


def postmaster_pid(postgres: TestPostgres) -> int | None:
    """The embedded server's main process, from its pid file (None: a server elsewhere)."""
    pid_file = postgres.data_dir and postgres.data_dir / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file else None


async def stop_process(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()  # the stub keeps nothing worth a graceful stop
    await process.wait()


@asynccontextmanager
async def started(workers: int, relays: int = 0) -> AsyncIterator[Stack]:
    async with AsyncExitStack() as stop:
        tmp = Path(stop.enter_context(tempfile.TemporaryDirectory(prefix="payments-bench-")))
        postgres = TestPostgres()
        stop.callback(postgres.close)
        urls = []
        for _ in range(2):  # the service's database, then pgbench's
            database, url = postgres.create_database()
            stop.callback(postgres.drop_database, database)
            await migrate(url)
            urls.append(url)
        postgres_pid = postmaster_pid(postgres)

        port = free_port()
        stub = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "bench.stub", str(port)],
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,  # aiohttp prints one line once it listens
            stderr=stop.enter_context((tmp / "stub.log").open("wb")),
            start_new_session=True,  # a Ctrl-C reaches the benchmark only, which stops it
        )
        stop.push_async_callback(stop_process, stub)
        assert stub.stdout is not None
        if b"Running on" not in await asyncio.wait_for(stub.stdout.readline(), 30):
            raise RuntimeError("the order stub did not start:\n" + (tmp / "stub.log").read_text())
        stub_url = f"http://127.0.0.1:{port}"

        (config := tmp / "bench.toml").write_text(CONFIG.format(workers=workers, relays=relays))
        env = service_env(config, urls[0], stub_url) | {"PAYMENTS_WEBHOOK_SECRET": WEBHOOK_SECRET}
        service = ServiceProcess(port=free_port(), env=env, log=tmp / "service.log")
        stop.callback(service.stop)
        service.start()
        await service.wait_ready()
        service_pid = next(c.pid for c in psutil.Process().children() if "serve" in c.cmdline())
        pids = {"service": service_pid, "postgres": postgres_pid, "stub": stub.pid}
        yield Stack(tmp, service, stub_url, urls[1], pids)
