"""`python -m bench.scrapes`: create latency with and without a flood of scrapes.

The Order Service is down (no relay runs) and has left a large backlog of undelivered
webhooks; the service runs as in production (`payments serve`, one worker). Creates run in
a closed loop, first alone, then while a process of its own keeps `--scrapers` requests to
/metrics and /health/ready in flight, both of which report the backlog (`--paths
/health/live`: the same flood of requests that read nothing, for comparison). Prints p50
and p99 of each phase. Not part of any test run: its figures go in the README.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg

from bench.load import JSON, run
from service.db.migrate import migrate
from tests.support.postgres import TestPostgres
from tests.support.processes import ServiceProcess, service_env
from tests.support.service import free_port
from tests.support.sql import load_test_queries

CONFIG = """
[server]
workers = 1
[outbox]
relay_in_process = false
[gateway]
reconcile_after_seconds = 86400.0
"""
# Nothing listens there: the Order Service is down.
ORDER_SERVICE = "http://127.0.0.1:9"


async def scrape(url: str, paths: list[str], scrapers: int, seconds: float) -> None:
    """Keep `scrapers` requests to `paths` in flight for `seconds`."""
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=scrapers)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def scraper(number: int) -> None:
            path = paths[number % len(paths)]
            while time.monotonic() < deadline:
                async with session.get(url + path) as response:
                    await response.read()

        await asyncio.gather(*(scraper(n) for n in range(scrapers)))


async def measure(
    backlog: int, paths: list[str], scrapers: int, concurrency: int, seconds: float
) -> None:
    postgres = TestPostgres()
    try:
        name, database_url = postgres.create_database()
        await migrate(database_url)
        with tempfile.TemporaryDirectory(prefix="payments-scrapes-") as tmp:
            (config := Path(tmp) / "scrapes.toml").write_text(CONFIG)
            env = service_env(config, database_url, ORDER_SERVICE)
            service = ServiceProcess(port=free_port(), env=env, log=Path(tmp) / "service.log")
            service.start()
            try:
                await service.wait_ready()
                await queue_backlog(service.url, database_url, backlog)
                orders = itertools.count(2)

                def body(_: int) -> bytes:
                    return json.dumps({"order_id": next(orders), "amount": 1000}).encode()

                url = service.url + "/api/v1/payments/"
                alone = await run(url, body, concurrency, 10**9, seconds)
                flood = await asyncio.create_subprocess_exec(
                    *[sys.executable, "-m", "bench.scrapes", "--scrape", service.url],
                    *["--scrapers", str(scrapers), "--seconds", str(seconds + 2)],
                    *["--paths", *paths],
                )
                await asyncio.sleep(1)  # the scrapers at full pace before the creates start
                scraped = await run(url, body, concurrency, 10**9, seconds)
                await flood.wait()
            finally:
                service.stop()
        postgres.drop_database(name)
    finally:
        postgres.close()
    print(f"backlog {backlog:,} events, {concurrency} creates in flight, {seconds:g} s a phase")
    scraping = f"with {scrapers} scrapers of {' and '.join(paths)}"
    for label, load in [("alone", alone), (scraping, scraped)]:
        print(f"  {label}: {load.summary()}")


async def queue_backlog(service_url: str, database_url: str, events: int) -> None:
    async with aiohttp.ClientSession() as session:
        body = json.dumps({"order_id": 1, "amount": 1000}).encode()
        async with session.post(service_url + "/api/v1/payments/", data=body, headers=JSON) as r:
            payment_id = (await r.json())["id"]
    connection = await asyncpg.connect(database_url)
    try:
        checks = load_test_queries()
        await checks.queue_undelivered_events(connection, payment_id=payment_id, count=events)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scrapes", description=__doc__)
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--scrapers", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16, help="creates in flight")
    parser.add_argument("--seconds", type=float, default=15.0, help="of each phase")
    parser.add_argument("--paths", nargs="+", default=["/metrics", "/health/ready"])
    parser.add_argument("--scrape", metavar="URL", help=argparse.SUPPRESS)  # the flood itself
    args = parser.parse_args()
    if args.scrape:
        asyncio.run(scrape(args.scrape, args.paths, args.scrapers, args.seconds))
    else:
        options = (args.backlog, args.paths, args.scrapers, args.concurrency, args.seconds)
        asyncio.run(measure(*options))


if __name__ == "__main__":
    main()
