"""`python -m bench.clients`: which HTTP client sends webhooks fastest, by numbers.

Starts the benchmark's Order Service stub (bench/stub.py, a process of its own) and sends it
`--requests` signed webhook POSTs through each candidate, `--concurrency` in flight over as
many keep-alive connections, as the relay does: the body as bytes, the Standard Webhooks
headers, the answer read up to 4 KiB, a total timeout per call. Each candidate runs
`--rounds` times, interleaved; the table gives each one's best round: webhooks per second
and this process's CPU per webhook (the relay shares its core with the API).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import httpx
import uvloop
from httpx_aiohttp import AiohttpTransport

from service.signing import secret_key, sign_all
from tests.support.service import free_port

ROOT = Path(__file__).resolve().parents[1]
KEY = secret_key("whsec_YmVuY2htYXJrLW9ubHktc2lnbmluZy1rZXktMDAwMDAwMDA=")
BODY = b'{"payment_status":"completed","transaction_id":"3b1f8f0e-4f7e-4a57-9a55-0f4d7b1f2c11"}'
MAX_ANSWER_BYTES = 4096
TIMEOUT = 5.0
Send = Callable[[int], Awaitable[int]]  # order id -> status


def headers(order_id: int) -> dict[str, str]:
    msg_id, timestamp = f"00000000-0000-4000-8000-{order_id:012d}", int(time.time())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_all((KEY,), msg_id, timestamp, BODY),
    }


@asynccontextmanager
async def httpx_transport(
    url: str, slots: int, transport: httpx.AsyncBaseTransport
) -> AsyncIterator[Send]:
    timeouts = httpx.Timeout(TIMEOUT).as_dict()
    base = httpx.URL(url)

    async def send(order_id: int) -> int:
        request = httpx.Request(
            "POST",
            base.copy_with(path=f"/api/v1/orders/{order_id}/webhook"),
            content=BODY,
            headers=headers(order_id),
            extensions={"timeout": timeouts},
        )
        async with asyncio.timeout(TIMEOUT):
            response = await transport.handle_async_request(request)
            try:
                received = b""
                async for chunk in response.aiter_raw():
                    received += chunk
                    if len(received) >= MAX_ANSWER_BYTES:
                        break
            finally:
                await response.aclose()
        return response.status_code

    async with transport:
        yield send


def httpcore_pool(url: str, slots: int) -> contextlib.AbstractAsyncContextManager[Send]:
    limits = httpx.Limits(max_connections=slots, max_keepalive_connections=slots)
    transport = httpx.AsyncHTTPTransport(limits=limits, verify=ssl.create_default_context())
    return httpx_transport(url, slots, transport)


def httpx_aiohttp(url: str, slots: int) -> contextlib.AbstractAsyncContextManager[Send]:
    limits = httpx.Limits(max_connections=slots, max_keepalive_connections=slots)
    transport = AiohttpTransport(limits=limits, verify=ssl.create_default_context())
    return httpx_transport(url, slots, transport)


@asynccontextmanager
async def aiohttp_session(url: str, slots: int) -> AsyncIterator[Send]:
    connector = aiohttp.TCPConnector(limit=slots, ssl=ssl.create_default_context())
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(
        url, connector=connector, timeout=timeout, auto_decompress=False, cookie_jar=None
    ) as session:

        async def send(order_id: int) -> int:
            async with session.post(
                f"/api/v1/orders/{order_id}/webhook",
                data=BODY,
                headers=headers(order_id),
                allow_redirects=False,
            ) as response:
                await response.content.read(MAX_ANSWER_BYTES)
                return response.status

        yield send


CLIENTS: dict[str, Callable[[str, int], contextlib.AbstractAsyncContextManager[Send]]] = {
    "httpx transport (httpcore)": httpcore_pool,
    "httpx-aiohttp transport": httpx_aiohttp,
    "aiohttp ClientSession": aiohttp_session,
}


async def measure(name: str, url: str, requests: int, slots: int) -> tuple[float, float]:
    """(webhooks per second, CPU µs per webhook) of one round."""
    order_ids = iter(range(requests))
    async with CLIENTS[name](url, slots) as send:

        async def worker() -> None:
            for order_id in order_ids:
                status = await send(order_id)
                assert status == 200, status

        await asyncio.gather(*(send(10**9 + i) for i in range(slots)))  # connections open
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(slots)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return requests / wall, cpu / requests * 1e6


async def main(requests: int, slots: int, rounds: int) -> None:
    port = free_port()
    stub = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.stub", str(port), cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert stub.stdout is not None
        await asyncio.wait_for(stub.stdout.readline(), 30)
        url = f"http://127.0.0.1:{port}"
        best: dict[str, tuple[float, float]] = {}
        for _ in range(rounds):
            for name in CLIENTS:
                rate, cpu = await measure(name, url, requests, slots)
                print(f"  {name}: {rate:,.0f}/s, {cpu:.0f} µs CPU each", file=sys.stderr)
                if name not in best or rate > best[name][0]:
                    best[name] = (rate, cpu)
        print(f"{requests} webhooks a round, {slots} in flight, best of {rounds}:")
        for name, (rate, cpu) in best.items():
            print(f"{name:<28} {rate:>8,.0f}/s  {cpu:>5.0f} µs CPU per webhook")
    finally:
        stub.kill()
        await stub.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.clients", description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    uvloop.run(main(args.requests, args.concurrency, args.rounds))
