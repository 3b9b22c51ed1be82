"""The phases, in order. Each returns its figures (the table shows the top-level numbers) and
pays orders from a block of ids of its own, so the stub can tell its webhooks apart."""

from __future__ import annotations

import asyncio
import csv
import itertools
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
import psutil

from bench.load import Body, latency, run
from bench.meter import Meter, peak_rss_mb
from bench.pgbench import payment_script, pgbench
from bench.stack import Stack
from tests.support.processes import PAYMENTS, clean_env

CONCURRENCY = 64
CREATE, BATCH = "/api/v1/payments/", "/api/v1/payments/batch"
BATCH_SIZE, BATCH_CONCURRENCY = 500, 4  # as `payments import` sends them
BLOCK = 10**12  # order ids per phase
Bodies = Callable[[int], Body]  # first order id of the block -> bodies


class Options(msgspec.Struct, kw_only=True):
    quick: bool = False
    duration: float = 10.0  # seconds of pgbench and of create
    bulk: int = 10_000
    import_rows: int = 0  # 0: --bulk
    workers: int = 1
    relays: int = 0  # relay processes beside the workers (0: a relay inside each worker)
    webhook_rate: float = 200.0
    webhook_seconds: float = 10.0

    @property
    def bound(self) -> float:  # the longest wait: a phase's requests, webhooks, import tool
        return 60.0 if self.quick else 600.0


@dataclass
class Bench:
    options: Options
    stack: Stack
    meter: Meter
    limit_per_s: float = 0.0
    blocks: itertools.count[int] = field(default_factory=lambda: itertools.count(BLOCK, BLOCK))

    async def stub(self, what: str, base: int) -> Any:
        params = {"lo": base, "hi": base + BLOCK}
        async with aiohttp.request("GET", self.stack.stub_url + what, params=params) as response:
            return msgspec.json.decode(await response.read())

    async def webhooks(self, base: int, expected: int) -> tuple[int, int]:
        """(orders of the block whose webhook arrived, last arrival ns), once `expected` did."""
        deadline = time.monotonic() + self.options.bound
        while True:
            received, last_ns = await self.stub("/count", base)
            if received >= expected or time.monotonic() > deadline:
                return received, last_ns
            await asyncio.sleep(0.1)


def payment(order_id: int) -> dict[str, Any]:
    return {"order_id": order_id, "amount": 100 + order_id * 7919 % 999_901, "currency": "JPY"}


def payments(base: int) -> Callable[[int], bytes]:  # request i pays order base + i
    return lambda index: msgspec.json.encode(payment(base + index))


def seconds_since(start_ns: int, end_ns: int) -> float | None:
    return round((end_ns - start_ns) / 1e9, 3) if end_ns else None


async def limit(bench: Bench) -> dict[str, Any]:
    (script := bench.stack.tmp / "payment.pgbench").write_text(payment_script())
    per_s = await pgbench(bench.stack.limit_url, script, CONCURRENCY, round(bench.options.duration))
    bench.limit_per_s = round(per_s, 1)
    return {"payments_per_s": bench.limit_per_s}


async def create(bench: Bench) -> dict[str, Any]:
    for seconds in (min(2.0, bench.options.duration / 2), bench.options.duration):
        base, url = next(bench.blocks), bench.stack.service.url + CREATE
        bench.meter.start()  # the first run is a warm-up: only the second is kept
        load = await run(url, payments(base), CONCURRENCY, BLOCK, seconds)
        cpu = bench.meter.cores()
        await bench.webhooks(base, load.ok)  # the relay catches up before what follows
    data = load.summary() | {"cpu": cpu}
    return data | {"ratio_to_limit": round(data["per_s"] / bench.limit_per_s, 3)}


async def paid_until_webhooks(
    bench: Bench, path: str, bodies: Bodies, calls: int, orders: int, concurrency: int
) -> dict[str, Any]:
    """`calls` POSTs to `path` paying `orders` orders in all; time to the last webhook."""
    base, bound, url = next(bench.blocks), bench.options.bound, bench.stack.service.url + path
    load = await run(url, bodies(base), concurrency, calls, bound)
    received, last_ns = await bench.webhooks(base, orders)
    data = {"orders": orders, "answered_s": seconds_since(load.first_ns, load.last_ns)}
    data |= {"webhooks": received, "last_webhook_s": seconds_since(load.first_ns, last_ns)}
    return data | {"calls": load.summary()}


async def bulk(bench: Bench) -> dict[str, Any]:
    n = bench.options.bulk
    return await paid_until_webhooks(bench, CREATE, payments, n, n, CONCURRENCY)


async def batch(bench: Bench) -> dict[str, Any]:
    n, size = bench.options.bulk, BATCH_SIZE

    def bodies(base: int) -> Body:  # call i pays the block's orders i * size onwards
        ids = [range(base + i, base + min(n, i + size)) for i in range(0, n, size)]
        return lambda i: msgspec.json.encode({"payments": [*map(payment, ids[i])]})

    data = await paid_until_webhooks(bench, BATCH, bodies, -(-n // size), n, BATCH_CONCURRENCY)
    per_s = round(n / data["answered_s"], 1) if data["answered_s"] else 0
    return data | {"creates_per_s": per_s, "ratio_to_limit": round(per_s / bench.limit_per_s, 3)}


async def webhook_latency(bench: Bench) -> dict[str, Any]:
    rate, seconds = bench.options.webhook_rate, bench.options.webhook_seconds
    base, count, url = next(bench.blocks), round(rate * seconds), bench.stack.service.url + CREATE
    load = await run(url, payments(base), CONCURRENCY, count, seconds + 30, rate)
    received, _ = await bench.webhooks(base, load.ok)
    answered = load.answered_ns
    receipts = await bench.stub("/received", base)
    delays = [ns - answered[o - base] for o, ns in receipts if o - base in answered]
    data = {"paid": load.ok, "webhooks": received, "matched": len(delays), **latency(delays)}
    return data | {"create": load.summary()}


async def import_rows(bench: Bench) -> dict[str, Any]:
    n, base = bench.options.import_rows or bench.options.bulk, next(bench.blocks)
    tmp = bench.stack.tmp
    source, report = tmp / "import.csv", tmp / "import.report.csv"
    rows = (f"{p['order_id']},{p['amount']},JPY\n" for p in map(payment, range(base, base + n)))
    source.write_text("order_id,amount,currency\n" + "".join(rows))
    argv = [*PAYMENTS, "import", str(source), "--url", bench.stack.service.url]
    argv += ["--report", str(report)]  # its defaults: batches of 500, 4 in flight
    env = clean_env()
    started_ns = time.time_ns()
    with (tmp / "import.log").open("wb") as log:
        tool = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=log, stderr=log, start_new_session=True
        )
        try:
            code = await asyncio.wait_for(tool.wait(), bench.options.bound)
        finally:
            if tool.returncode is None:  # timed out or Ctrl-C: the tool and what it started
                os.killpg(tool.pid, signal.SIGKILL)
                await tool.wait()
    command_s = seconds_since(started_ns, time.time_ns())
    lines = report.read_text().splitlines() if report.exists() else []  # none if the tool failed
    outcomes = Counter(row["outcome"] for row in csv.DictReader(lines))
    received, last_ns = await bench.webhooks(base, outcomes["paid"])
    data = {"rows": n, "exit_code": code, "paid": outcomes["paid"], "command_s": command_s}
    data |= {"webhooks": received, "last_webhook_s": seconds_since(started_ns, last_ns)}
    return data | {"outcomes": outcomes}


async def memory(bench: Bench) -> dict[str, Any]:
    service = psutil.Process(bench.stack.pids["service"])
    processes = [service, *service.children(recursive=True)]
    return {f"pid_{p.pid}_peak_rss_mb": round(peak_rss_mb(p.pid), 1) for p in processes}


PHASES: list[tuple[str, Callable[[Bench], Awaitable[dict[str, Any]]]]] = [
    ("limit: pgbench, c=64", limit),
    ("create: POST closed loop, c=64", create),
    ("bulk: orders at c=64, to last webhook", bulk),
    (f"batch: {BATCH_SIZE} orders a call, c={BATCH_CONCURRENCY}, to last webhook", batch),
    ("webhook latency: paced, answer->webhook", webhook_latency),
    ("import: `payments import` (batches)", import_rows),
    ("memory: service processes (whole run)", memory),
]
