"""The load generator: HTTP/1.1 over raw asyncio streams, one keep-alive connection per worker.

Requests are pre-encoded bytes (the caller builds them); responses are parsed just enough to
get the status and the Content-Length (or chunked) body. Every run is bounded by a request
count and/or a duration, and reports the generator's own CPU time next to its results.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.stats import Latency, latency_summary

HEADER_END = b"\r\n\r\n"
READ_LIMIT = 1 << 20
CONNECT_TIMEOUT = 10.0
# A response slower than this is a failed request (the service answers 503 long before).
RESPONSE_TIMEOUT = 30.0
ONE_REQUEST_TIMEOUT = 5.0
NETWORK_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    received_ns: int  # time.time_ns() when the body was read


RequestFactory = Callable[[int], bytes]
ResponseHook = Callable[[int, Response], None]


def build_request(target: Target, method: str, path: str, body: bytes | None = None) -> bytes:
    """One HTTP/1.1 request, keep-alive, JSON body with Content-Length."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {target.authority}\r\n"
    if body is None:
        return (head + "\r\n").encode("ascii")
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body


class Connection:
    """One persistent HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.closed = False

    @classmethod
    async def open(cls, target: Target) -> Connection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(target.host, target.port, limit=READ_LIMIT), CONNECT_TIMEOUT
        )
        return cls(reader, writer)

    async def send(self, request: bytes) -> Response:
        self._writer.write(request)
        head = await self._reader.readuntil(HEADER_END)
        status = int(head[9:12])
        lower = head.lower()
        if b"\r\ntransfer-encoding: chunked" in lower:
            body = await self._read_chunked()
        else:
            body = await self._reader.readexactly(_content_length(lower))
        if b"\r\nconnection: close" in lower:
            self.close()
        return Response(status, body, time.time_ns())

    async def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self._reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()


def _content_length(lower_head: bytes) -> int:
    start = lower_head.find(b"\r\ncontent-length:")
    if start < 0:
        return 0
    start += len(b"\r\ncontent-length:")
    return int(lower_head[start : lower_head.index(b"\r\n", start)])


async def request_once(target: Target, request: bytes) -> Response:
    """One request on a fresh connection (health checks, stub queries)."""
    connection = await Connection.open(target)
    try:
        return await asyncio.wait_for(connection.send(request), ONE_REQUEST_TIMEOUT)
    finally:
        connection.close()


@dataclass(slots=True)
class LoadResult:
    """What one bounded run did, with the generator's own CPU use."""

    concurrency: int
    requests: int = 0
    ok: int = 0
    failures: int = 0  # network errors and timeouts
    dropped: int = 0  # open loop: not sent, `max_in_flight` requests were already waiting
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ns: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0
    first_send_ns: int = 0  # time.time_ns()
    last_receive_ns: int = 0
    loadgen_cpu_s: float = 0.0

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def latency(self) -> Latency:
        return latency_summary(self.latencies_ns)

    def summary(self) -> dict[str, object]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "ok": self.ok,
            "failures": self.failures,
            "dropped": self.dropped,
            "statuses": {str(code): count for code, count in sorted(self.statuses.items())},
            "elapsed_s": round(self.elapsed_s, 3),
            "ok_per_s": round(self.ok_per_s, 1),
            "latency_ms": self.latency.as_dict(),
            "loadgen_cpu_s": round(self.loadgen_cpu_s, 3),
            "loadgen_cpu_share": round(self.loadgen_cpu_s / self.elapsed_s, 3)
            if self.elapsed_s > 0
            else None,
        }


class _Recorder:
    def __init__(self, result: LoadResult, ok_statuses: frozenset[int], hook: ResponseHook | None):
        self.result = result
        self.ok_statuses = ok_statuses
        self.hook = hook

    def record(self, index: int, started_ns: int, response: Response) -> None:
        result = self.result
        result.requests += 1
        result.latencies_ns.append(time.perf_counter_ns() - started_ns)
        result.statuses[response.status] += 1
        if response.status in self.ok_statuses:
            result.ok += 1
        if response.received_ns > result.last_receive_ns:
            result.last_receive_ns = response.received_ns
        if self.hook is not None:
            self.hook(index, response)

    def failed(self) -> None:
        self.result.requests += 1
        self.result.failures += 1


async def closed_loop(
    target: Target,
    concurrency: int,
    factory: RequestFactory,
    *,
    duration: float | None = None,
    max_requests: int | None = None,
    hook: ResponseHook | None = None,
    ok_statuses: frozenset[int] = frozenset({200, 201}),
) -> LoadResult:
    """`concurrency` workers, each sending its next request when the previous one answered.

    Stops issuing at `duration` seconds or after `max_requests` (at least one must be given).
    """
    if duration is None and max_requests is None:
        raise ValueError("a run needs a duration or a request count")
    result = LoadResult(concurrency)
    recorder = _Recorder(result, ok_statuses, hook)
    counter = itertools.count()
    limit = max_requests if max_requests is not None else 1 << 62
    connections = await asyncio.gather(*(Connection.open(target) for _ in range(concurrency)))
    cpu_start = time.process_time()
    started = time.perf_counter()
    deadline = started + duration if duration is not None else float("inf")
    result.first_send_ns = time.time_ns()

    async def worker(connection: Connection) -> None:
        try:
            while True:
                index = next(counter)
                if index >= limit or time.perf_counter() >= deadline:
                    return
                request = factory(index)
                sent_ns = time.perf_counter_ns()
                try:
                    response = await asyncio.wait_for(connection.send(request), RESPONSE_TIMEOUT)
                except (*NETWORK_ERRORS, TimeoutError):
                    recorder.failed()
                    connection.close()
                else:
                    recorder.record(index, sent_ns, response)
                if connection.closed:
                    try:
                        connection = await Connection.open(target)
                    except (*NETWORK_ERRORS, TimeoutError):
                        return  # the server is gone: this worker stops, the run reports it
        finally:
            connection.close()

    await asyncio.gather(*(worker(connection) for connection in connections))
    result.elapsed_s = time.perf_counter() - started
    result.loadgen_cpu_s = time.process_time() - cpu_start
    return result


async def open_loop(
    target: Target,
    rate: float,
    count: int,
    factory: RequestFactory,
    *,
    hook: ResponseHook | None = None,
    max_in_flight: int = 256,
    ok_statuses: frozenset[int] = frozenset({200, 201}),
) -> LoadResult:
    """`count` requests sent at a steady `rate` per second, whatever the answers take.

    Idle keep-alive connections are reused; a new one opens when all are busy (up to
    `max_in_flight`, beyond which a request is dropped and counted, never queued).
    """
    result = LoadResult(concurrency=max_in_flight)
    recorder = _Recorder(result, ok_statuses, hook)
    idle: list[Connection] = list(
        await asyncio.gather(*(Connection.open(target) for _ in range(8)))
    )
    in_flight = peak = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            connection = idle.pop() if idle else await Connection.open(target)
            sent_ns = time.perf_counter_ns()
            try:
                response = await asyncio.wait_for(connection.send(factory(index)), RESPONSE_TIMEOUT)
            except (*NETWORK_ERRORS, TimeoutError):
                recorder.failed()
                connection.close()
                return
            recorder.record(index, sent_ns, response)
            if not connection.closed:
                idle.append(connection)
        except NETWORK_ERRORS:
            recorder.failed()
        finally:
            in_flight -= 1

    cpu_start = time.process_time()
    started = time.perf_counter()
    result.first_send_ns = time.time_ns()
    for index in range(count):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight >= max_in_flight:
            result.dropped += 1
            continue
        task = asyncio.create_task(one(index))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=RESPONSE_TIMEOUT + 1)
    result.elapsed_s = time.perf_counter() - started
    result.loadgen_cpu_s = time.process_time() - cpu_start
    result.concurrency = peak
    for connection in idle:
        connection.close()
    return result
