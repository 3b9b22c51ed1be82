"""Payments per second through the service with Stripe the gateway, against localstripe.

    .venv/bin/python -m bench.stripe_rate                # max_requests_per_second 25, 50, 100
    .venv/bin/python -m bench.stripe_rate --rates 25 0   # 0: no client-side limit

For each `max_requests_per_second`, a fresh localstripe that answers 429 past that many
requests in any second, as Stripe's account limit does (none for 0), a fresh database, and
the service in this process ([gateway] kind = "stripe", a charge time limit long enough
for every charge of a batch to wait its turn); then `--seconds` worth of orders (at least
200) go through `POST /api/v1/payments/batch`, `--batch` orders a call, one call at a
time, each order a PaymentIntent created and confirmed with `pm_card_visa`. It prints
payments per second (orders over the time of all calls), how many were not 201, the 429s
localstripe answered, and the requests it saw (one per order when nothing was sent again).

The rate with no limit is localstripe's own ceiling on this machine, not Stripe's; it
falls as its store grows (every export of a charge scans the whole store for its refunds),
which is why each rate gets a fresh server and only a few seconds' worth of orders.
Traffic goes to 127.0.0.1 only; every run is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

from tests.support.localstripe import LocalStripe
from tests.support.order_stub import OrderServiceStub
from tests.support.postgres import TestPostgres
from tests.support.service import serve
from tests.support.settings import make_settings

# With no client-side limit, a rate high enough never to be the one that binds.
UNLIMITED = 1_000_000.0
# Seconds a call may take beyond its orders' share of the rate.
MARGIN_SECONDS = 60.0


async def measure(postgres: TestPostgres, rate: float, orders: int, batch: int) -> str:
    database, url = postgres.create_database()
    stub = OrderServiceStub().start()
    try:
        with LocalStripe(rate_limit=int(rate)) as stripe_api:
            time_limit = batch / (rate or 100) + MARGIN_SECONDS
            gateway = {
                "kind": "stripe",
                "stripe_api_key": stripe_api.api_key,
                "stripe_api_base": stripe_api.url,
                "max_requests_per_second": rate or UNLIMITED,
                "charge_timeout_seconds": time_limit,
                "reconcile_after_seconds": time_limit + MARGIN_SECONDS,
            }
            settings = make_settings(url, stub.url, gateway=gateway)
            not_created = 0
            async with serve(settings) as svc:
                # A line per payment would be most of the run's output.
                logging.getLogger("service").setLevel(logging.WARNING)
                started = time.perf_counter()
                for first in range(1, orders + 1, batch):
                    items = [
                        {"order_id": n, "amount": 1000, "payment_method_token": "pm_card_visa"}
                        for n in range(first, min(first + batch, orders + 1))
                    ]
                    answer = await svc.client.post(
                        "/api/v1/payments/batch",
                        json={"payments": items},
                        timeout=time_limit + MARGIN_SECONDS,
                    )
                    answer.raise_for_status()
                    not_created += sum(r["status"] != 201 for r in answer.json()["results"])
                elapsed = time.perf_counter() - started
            stats = await stripe_api.stats()
    finally:
        stub.stop()
        postgres.drop_database(database)
    return (
        f"| {rate or 'none':>7} | {orders:>6} | {orders / elapsed:>10.1f} | {not_created:>11} "
        f"| {stats['answered_429']:>4} | {stats['requests']:>8} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", type=float, nargs="+", default=[25, 50, 100])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--batch", type=int, default=500)
    options = parser.parse_args()
    print(f"batches of {options.batch}, against localstripe on 127.0.0.1")
    print("| limit/s | orders | payments/s | not created | 429s | requests |")
    print("|---|---|---|---|---|---|")
    postgres = TestPostgres()
    try:
        for rate in options.rates:
            orders = max(200, int((rate or 100) * options.seconds))
            print(await measure(postgres, rate, orders, options.batch), flush=True)
    finally:
        postgres.close()


if __name__ == "__main__":
    asyncio.run(main())
