"""Order Service stub: answers 200 to every order webhook and remembers when each arrived.

Runs in its own process (`python -m bench.order_stub --port P`), so its CPU is not the load
generator's. Endpoints:

- `POST /api/v1/orders/{order_id}/webhook`: 200, records (order_id, receive time.time_ns(),
  payment_status, transaction_id); the timestamp is taken first thing in the handler.
- `GET /stats?lo=&hi=`: counts and first/last receive times for order_ids in [lo, hi).
- `GET /records?lo=&hi=`: every record in that range, as JSON arrays.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

import msgspec
from aiohttp import web

from bench.procs import run_event_loop

Record = tuple[int, int, str, str]  # order_id, received_ns, payment_status, transaction_id


class WebhookBody(msgspec.Struct):
    payment_status: str
    transaction_id: str


class Stats(msgspec.Struct):
    received: int
    unique_orders: int
    invalid: int
    first_ns: int | None
    last_ns: int | None


_decode = msgspec.json.Decoder(WebhookBody).decode
_encode = msgspec.json.Encoder().encode
RECORDS: list[Record] = []
INVALID = [0]


async def webhook(request: web.Request) -> web.Response:
    received_ns = time.time_ns()
    body = await request.read()
    try:
        order_id = int(request.match_info["order_id"])
        event = _decode(body)
    except (ValueError, msgspec.DecodeError):
        INVALID[0] += 1
        return web.Response(status=400)
    RECORDS.append((order_id, received_ns, event.payment_status, event.transaction_id))
    return web.Response(status=200)


def _in_range(request: web.Request) -> list[Record]:
    lo = int(request.query.get("lo", "0"))
    hi = int(request.query.get("hi", str(1 << 63)))
    return [record for record in RECORDS if lo <= record[0] < hi]


async def stats(request: web.Request) -> web.Response:
    records = _in_range(request)
    times = [record[1] for record in records]
    result = Stats(
        received=len(records),
        unique_orders=len({record[0] for record in records}),
        invalid=INVALID[0],
        first_ns=min(times) if times else None,
        last_ns=max(times) if times else None,
    )
    return web.Response(body=_encode(result), content_type="application/json")


async def records(request: web.Request) -> web.Response:
    return web.Response(body=_encode(_in_range(request)), content_type="application/json")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/api/v1/orders/{order_id}/webhook", webhook)
    app.router.add_get("/stats", stats)
    app.router.add_get("/records", records)
    return app


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"order stub listening on {host}:{port}", flush=True)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run_event_loop(serve(args.host, args.port))


if __name__ == "__main__":
    main()
