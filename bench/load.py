"""The load generator: aiohttp's client, `concurrency` keep-alive connections, bounded runs."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

JSON = {"Content-Type": "application/json"}
Body = Callable[[int], bytes]  # request index -> JSON body
TIMEOUT = aiohttp.ClientTimeout(total=30)  # a slower answer is an error (503 comes long before)


@dataclass
class Load:
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # network errors and timeouts
    latencies_ns: list[int] = field(default_factory=list)
    answered_ns: dict[int, int] = field(default_factory=dict)  # index -> time.time_ns(), 2xx only
    first_ns: int = 0
    last_ns: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.answered_ns)

    def summary(self) -> dict[str, Any]:
        per_s = round(self.ok / self.elapsed_s, 1) if self.elapsed_s else 0.0
        counts = {"ok": self.ok, "errors": self.errors, "statuses": self.statuses, "per_s": per_s}
        return counts | latency(self.latencies_ns)


def latency(values_ns: list[int]) -> dict[str, Any]:
    """Nearest-rank p50 and p99 in ms (0.0 when empty); values may be negative."""
    values = sorted(values_ns)
    ranks = {q: max(1, min(len(values), round(q / 100 * len(values) + 0.5))) for q in (50, 99)}
    return {f"p{q}_ms": round(values[r - 1] / 1e6, 2) if values else 0.0 for q, r in ranks.items()}


async def run(
    url: str, body: Body, concurrency: int, count: int, seconds: float, rate: float = 0.0
) -> Load:
    """POST body(0..count-1) to `url`, `concurrency` in flight, for at most `seconds`; closed
    loop, or paced: request i starts at i/rate, or late (latency shows it) if all are busy."""
    load = Load(first_ns=time.time_ns())
    indexes = iter(range(count))
    started = time.perf_counter()
    deadline = started + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)

    async def worker(session: aiohttp.ClientSession) -> None:
        for index in indexes:  # shared by the workers: each index is sent once
            if rate:
                await asyncio.sleep(started + index / rate - time.perf_counter())
            if time.perf_counter() >= deadline:
                return
            sent_ns = time.perf_counter_ns()
            try:
                async with session.post(url, data=body(index), headers=JSON) as response:
                    await response.read()
            except (aiohttp.ClientError, TimeoutError):
                load.errors += 1
                continue
            load.latencies_ns.append(time.perf_counter_ns() - sent_ns)
            load.statuses[response.status] += 1
            if 200 <= response.status < 300:
                load.answered_ns[index] = load.last_ns = time.time_ns()

    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    load.elapsed_s = time.perf_counter() - started
    return load
