"""The measured phases. Each returns a JSON-ready dict, CPU use per part included."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from bench.load import LoadResult, RequestFactory, Response, Target, build_request, closed_loop
from bench.load import open_loop as open_loop_run
from bench.machine import CpuMeter, with_other
from bench.options import HIGH, LEVELS, Options
from bench.order_stub import Stats
from bench.pgbench import payment_script, run_pgbench
from bench.procs import peak_rss_kb, reset_peak_rss, rss_kb
from bench.profile import Profiler
from bench.stack import OrderStub, Stack
from bench.stats import latency_summary

T = TypeVar("T")
# Each phase pays its own range of order ids, so webhooks can be told apart.
ORDER_BLOCK = 10**12
ORDER_BASE = {
    "warmup": 1 * ORDER_BLOCK,
    "create_1": 2 * ORDER_BLOCK,
    "create_16": 3 * ORDER_BLOCK,
    "create_64": 4 * ORDER_BLOCK,
    "bulk": 5 * ORDER_BLOCK,
    "webhook": 6 * ORDER_BLOCK,
    "import": 7 * ORDER_BLOCK,
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
# The what-if of the limit phase: settle_payment's NOTIFY replaced by a constant.
NOTIFY_CALL = re.compile(r"pg_notify\s*\([^)]*\)\s+IS\s+NULL", re.IGNORECASE)


class CreatedIds(msgspec.Struct):
    id: int
    order_id: int


class Created(msgspec.Struct):
    id: int
    order_id: int
    transaction_id: str
    updated_at: datetime


_decode_ids = msgspec.json.Decoder(CreatedIds).decode
_decode_created = msgspec.json.Decoder(Created).decode


@dataclass
class Bench:
    stack: Stack
    options: Options
    meter: CpuMeter
    target: Target
    created: list[tuple[int, int]] = field(default_factory=list)  # (payment id, order id)
    relay_active: bool = False

    @property
    def stub(self) -> OrderStub:
        assert self.stack.stub is not None
        return self.stack.stub

    async def measured(self, work: Awaitable[T]) -> tuple[T, dict[str, Any]]:
        """Await one measurement; its result and the CPU cores each part used meanwhile."""
        before = self.meter.snapshot()
        result = await work
        return result, CpuMeter.cores(before, self.meter.snapshot())


def create_requests(target: Target, base: int, seed: int) -> RequestFactory:
    """POST /api/v1/payments/ for order base+index, a random whole amount 100..1,000,000."""
    rng = random.Random(seed)
    head = (
        f"POST /api/v1/payments/ HTTP/1.1\r\nHost: {target.authority}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode("ascii")

    def make(index: int) -> bytes:
        amount = rng.randint(100, 1_000_000)
        body = b'{"order_id":%d,"amount":%d,"currency":"JPY"}' % (base + index, amount)
        return b"%s%d\r\n\r\n%s" % (head, len(body), body)

    return make


def cycle(requests: list[bytes]) -> RequestFactory:
    return lambda index: requests[index % len(requests)]


def collect_ids(into: list[tuple[int, int]]) -> Callable[[int, Response], None]:
    def hook(index: int, response: Response) -> None:
        if response.status == 201:
            payment = _decode_ids(response.body)
            into.append((payment.id, payment.order_id))

    return hook


async def wait_for_webhooks(
    bench: Bench, lo: int, hi: int, expected: int, stall: float, bound: float
) -> Stats:
    """Poll the stub until `expected` orders in [lo, hi) had their webhook.

    Gives up when nothing new arrived for `stall` seconds or after `bound` seconds.
    """
    started = last_progress = time.monotonic()
    stats: Stats = await bench.stub.stats(lo, hi)
    while stats.unique_orders < expected:
        bench.relay_active = bench.relay_active or stats.unique_orders > 0
        now = time.monotonic()
        if now - last_progress > stall or now - started > bound:
            break
        await asyncio.sleep(0.1)
        previous = stats.unique_orders
        stats = await bench.stub.stats(lo, hi)
        if stats.unique_orders > previous:
            last_progress = time.monotonic()
    bench.relay_active = bench.relay_active or stats.unique_orders > 0
    return stats


async def settle_outbox(bench: Bench, stall: float = 3.0) -> dict[str, Any]:
    """Let the relay catch up before the next phase (bounded: no relay, no wait)."""
    assert bench.stack.service is not None
    started = last_progress = time.monotonic()
    best: int | None = None
    while True:
        readiness = await bench.stack.service.readiness()
        pending = readiness.outbox_pending if readiness else None
        if pending == 0:
            break
        now = time.monotonic()
        if pending is not None and (best is None or pending < best):
            best, last_progress = pending, now
        if now - last_progress > stall or now - started > bench.options.settle_bound:
            break
        await asyncio.sleep(0.1)
    return {"outbox_pending": pending, "waited_s": round(time.monotonic() - started, 2)}


async def limit_phase(bench: Bench) -> dict[str, Any]:
    """pgbench on a database of its own, at each concurrency, plus a what-if without NOTIFY."""
    script = bench.stack.tmp / "payment.pgbench.sql"
    text = payment_script()
    script.write_text(text)
    runs = []
    for concurrency in LEVELS:
        runs.append(await _pgbench_run(bench, script, concurrency))
    without_notify = None
    if NOTIFY_CALL.search(text):
        no_notify = bench.stack.tmp / "payment-no-notify.pgbench.sql"
        no_notify.write_text(NOTIFY_CALL.sub("true", text))
        without_notify = await _pgbench_run(bench, no_notify, HIGH)
    return {"script": text, "runs": runs, "without_notify": without_notify}


async def _pgbench_run(bench: Bench, script: Path, concurrency: int) -> dict[str, Any]:
    result, cores = await bench.measured(
        run_pgbench(bench.stack.limit_url, script, concurrency, bench.options.duration)
    )
    # pgbench is the client here: its CPU goes where the load generator's would.
    cores["loadgen"] = round(result.client_cpu_s / result.duration_s, 2)
    return {**result.as_dict(), "cpu_cores": with_other(cores)}


async def create_phase(
    bench: Bench, limit_at_high: float | None, profiler: Profiler | None = None
) -> dict[str, Any]:
    options = bench.options
    warm = await closed_loop(
        bench.target,
        HIGH,
        create_requests(bench.target, ORDER_BASE["warmup"], seed=0),
        duration=options.warmup,
        hook=collect_ids(bench.created),
    )
    settled = await settle_outbox(bench)
    runs: list[dict[str, Any]] = []
    for concurrency in LEVELS:
        factory = create_requests(bench.target, ORDER_BASE[f"create_{concurrency}"], concurrency)
        if profiler is not None and concurrency == HIGH:
            await profiler.begin(options.duration)
        result, cores = await bench.measured(
            closed_loop(
                bench.target,
                concurrency,
                factory,
                duration=options.duration,
                hook=collect_ids(bench.created),
            )
        )
        runs.append({**result.summary(), "cpu_cores": cores, "settle": await settle_outbox(bench)})
    at_high = next(run for run in runs if run["concurrency"] == HIGH)
    ratio = at_high["ok_per_s"] / limit_at_high if limit_at_high else None
    return {
        "warmup": {**warm.summary(), "settle": settled},
        "runs": runs,
        "ratio_to_limit_at_64": round(ratio, 3) if ratio is not None else None,
    }


async def read_phase(bench: Bench) -> dict[str, Any]:
    rng = random.Random(1)
    sample = rng.sample(bench.created, min(len(bench.created), 10_000))
    if not sample:
        return {"error": "no payments were created, nothing to read"}
    target = bench.target
    by_id = [build_request(target, "GET", f"/api/v1/payments/{pid}") for pid, _ in sample]
    by_order = [build_request(target, "GET", f"/api/v1/payments/order/{oid}") for _, oid in sample]
    results: dict[str, Any] = {}
    for name, requests in (("by_id", by_id), ("by_order", by_order)):
        result, cores = await bench.measured(
            closed_loop(
                target,
                HIGH,
                cycle(requests),
                duration=bench.options.duration,
                ok_statuses=frozenset({200}),
            )
        )
        results[name] = {**result.summary(), "cpu_cores": cores}
    return results


class RssSampler:
    """Peak RSS of the service processes: the kernel's mark (VmHWM, reset first) and samples."""

    def __init__(self, bench: Bench) -> None:
        assert bench.stack.service is not None
        self.processes = bench.stack.service.child.tree()
        self.reset = all(reset_peak_rss(process.pid) for process in self.processes)
        self.sampled: dict[int, int] = {}
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while not self._stop.is_set():
            for process in self.processes:
                kb = rss_kb(process.pid) or 0
                self.sampled[process.pid] = max(self.sampled.get(process.pid, 0), kb)
            await asyncio.sleep(0.1)

    async def finish(self) -> dict[str, Any]:
        self._stop.set()
        await self._task
        rows = []
        for index, process in enumerate(self.processes):
            hwm = peak_rss_kb(process.pid)
            sampled = self.sampled.get(process.pid, 0)
            peak = max(hwm or 0, sampled) if self.reset else sampled
            rows.append(
                {
                    "pid": process.pid,
                    "role": "granian main" if index == 0 else "granian worker",
                    "peak_rss_mb": round(peak / 1024, 1),
                    "vm_hwm_mb": round(hwm / 1024, 1) if hwm is not None else None,
                    "sampled_max_rss_mb": round(sampled / 1024, 1),
                }
            )
        return {
            "processes": rows,
            "max_peak_rss_mb": max((row["peak_rss_mb"] for row in rows), default=None),
            "total_peak_rss_mb": round(sum(row["peak_rss_mb"] for row in rows), 1),
            "peak_mark_reset_before_bulk": self.reset,
        }


async def bulk_phase(bench: Bench) -> tuple[dict[str, Any], dict[str, Any]]:
    """Design 5.1: N orders paid at concurrency 64, and all N webhooks received."""
    options = bench.options
    count = options.bulk
    base = ORDER_BASE["bulk"]
    ids: list[tuple[int, int]] = []
    sampler = RssSampler(bench)
    bound = 60.0 if options.quick else 600.0
    before = bench.meter.snapshot()
    result = await closed_loop(
        bench.target,
        HIGH,
        create_requests(bench.target, base, seed=5),
        max_requests=count,
        duration=bound,
        hook=collect_ids(ids),
    )
    stats = await wait_for_webhooks(
        bench, base, base + count, result.ok, stall=10.0 if options.quick else 20.0, bound=bound
    )
    cores = CpuMeter.cores(before, bench.meter.snapshot())
    memory = await sampler.finish()
    bench.created.extend(ids)
    payments_wall = (result.last_receive_ns - result.first_send_ns) / 1e9
    webhooks_wall = (stats.last_ns - result.first_send_ns) / 1e9 if stats.last_ns else None
    bulk = {
        "orders": count,
        "payments_ok": result.ok,
        "payments_wall_s": round(payments_wall, 3),
        "payments_per_s": round(result.ok / payments_wall, 1) if payments_wall > 0 else None,
        "webhooks_received": stats.unique_orders,
        "webhook_deliveries": stats.received,
        "webhooks_wall_s": round(webhooks_wall, 3) if webhooks_wall is not None else None,
        "all_webhooks_received": stats.unique_orders == result.ok == count,
        "load": result.summary(),
        "cpu_cores": cores,
    }
    return bulk, memory


async def webhook_phase(bench: Bench) -> dict[str, Any]:
    """Steady open-loop payments; commit-to-receipt latency of their webhooks."""
    options = bench.options
    count = max(1, round(options.webhook_rate * options.webhook_seconds))
    base = ORDER_BASE["webhook"]
    sent: dict[int, tuple[int, str, int]] = {}  # order_id -> (updated_at ns, tx id, response ns)

    def hook(index: int, response: Response) -> None:
        if response.status == 201:
            payment = _decode_created(response.body)
            updated_ns = (payment.updated_at - EPOCH) // MICROSECOND * 1000
            sent[payment.order_id] = (updated_ns, payment.transaction_id, response.received_ns)
            bench.created.append((payment.id, payment.order_id))

    result: LoadResult
    result, cores = await bench.measured(
        open_loop_run(
            bench.target,
            options.webhook_rate,
            count,
            create_requests(bench.target, base, seed=6),
            hook=hook,
        )
    )
    stats = await wait_for_webhooks(bench, base, base + count, len(sent), stall=10.0, bound=60.0)
    first: dict[int, tuple[int, str]] = {}
    for order_id, received_ns, _status, transaction_id in await bench.stub.records(
        base, base + count
    ):
        if order_id not in first or received_ns < first[order_id][0]:
            first[order_id] = (received_ns, transaction_id)
    from_commit, from_response, mismatched = [], [], 0
    for order_id, (received_ns, transaction_id) in first.items():
        if order_id not in sent:
            continue
        updated_ns, sent_tx, response_ns = sent[order_id]
        if sent_tx != transaction_id:
            mismatched += 1
        from_commit.append(received_ns - updated_ns)
        from_response.append(received_ns - response_ns)
    return {
        "rate_per_s": options.webhook_rate,
        "payments_sent": count,
        "payments_ok": len(sent),
        "achieved_rate_per_s": round(len(sent) / result.elapsed_s, 1) if result.elapsed_s else 0,
        "webhooks_received": stats.unique_orders,
        "transaction_id_mismatches": mismatched,
        "commit_to_receipt_ms": latency_summary(from_commit).as_dict(),
        "response_to_receipt_ms": _signed_summary(from_response),
        "create": result.summary(),
        "cpu_cores": cores,
        "note": "commit time = the payment's updated_at from the 201 body: the settle "
        "statement's now(), i.e. its transaction start, a little before the commit itself",
    }


def _signed_summary(values_ns: list[int]) -> dict[str, float | int]:
    """Like latency_summary, for values that may be negative (webhook before the response)."""
    if not values_ns:
        return latency_summary([]).as_dict()
    shift = min(values_ns)
    summary = latency_summary(value - shift for value in values_ns).as_dict()
    return {
        key: (value if key == "count" else round(value + shift / 1e6, 3))
        for key, value in summary.items()
    }
