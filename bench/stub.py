"""Order Service stub, a process of its own: `python -m bench.stub PORT`. (tests/support's runs
on a thread of its caller, sharing the load generator's GIL and CPU meter.) It answers 200 and
keeps each order's first webhook receipt (time.time_ns(), taken first); GET /count and /received
report them for order ids in [lo, hi)."""

from __future__ import annotations

import sys
import time

import msgspec
import uvloop
from aiohttp import web

FIRST_RECEIPT: dict[int, int] = {}  # order id -> ns; /count: [orders, last ns]


async def webhook(request: web.Request) -> web.Response:
    received_ns = time.time_ns()
    await request.read()
    FIRST_RECEIPT.setdefault(int(request.match_info["order_id"]), received_ns)
    return web.Response()


def in_range(request: web.Request) -> list[tuple[int, int]]:
    lo, hi = int(request.query["lo"]), int(request.query["hi"])
    return [(order, ns) for order, ns in FIRST_RECEIPT.items() if lo <= order < hi]


async def count(request: web.Request) -> web.Response:
    found = dict(in_range(request))
    return web.Response(body=msgspec.json.encode([len(found), max(found.values(), default=0)]))


async def received(request: web.Request) -> web.Response:
    return web.Response(body=msgspec.json.encode(in_range(request)))


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/api/v1/orders/{order_id}/webhook", webhook)
    app.router.add_get("/count", count)
    app.router.add_get("/received", received)
    loop = uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, loop=loop)
