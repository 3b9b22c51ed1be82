"""Charges per second through the Stripe adapter, against localstripe on loopback.

    .venv/bin/python -m bench.stripe_rate                # 25, 50 and 100 requests/s
    .venv/bin/python -m bench.stripe_rate --rates 25 0   # 0: no client-side limit

For each `max_requests_per_second`, `--seconds` worth of charges (at least 200) go through
a fresh localstripe and one StripeGateway with `--in-flight` calls at once, each a
PaymentIntent created and confirmed with `pm_card_visa`. It prints the charges per
second, each charge's time (p50, p99: mostly its wait for a turn under the limit) and any
charge not approved. The rate with no limit is localstripe's own ceiling on this machine,
not Stripe's; it falls as its store grows (every export of a charge scans the whole store
for its refunds), which is why each rate gets a fresh server and only a few seconds'
worth of charges. Traffic goes to 127.0.0.1 only; every run is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from decimal import Decimal

from service.gateway.contract import ChargeOutcome, ChargeRequest, GatewayUnavailable
from service.gateway.stripe import StripeGateway
from tests.support.localstripe import LocalStripe

# With no client-side limit, a rate high enough never to be the one that binds.
UNLIMITED = 1_000_000.0


async def measure(url: str, api_key: str, rate: float, charges: int, in_flight: int) -> str:
    adapter = StripeGateway(
        api_key=api_key,
        api_base=url,
        timeout_seconds=60.0,
        max_requests_per_second=rate or UNLIMITED,
    )
    slots = asyncio.Semaphore(in_flight)
    durations: list[float] = []
    not_approved = 0

    async def one(order_id: int) -> None:
        nonlocal not_approved
        async with slots:
            started = time.perf_counter()
            try:
                decision = await adapter.charge(
                    ChargeRequest(uuid.uuid4(), order_id, order_id, Decimal(1000), "pm_card_visa")
                )
                if decision.outcome is not ChargeOutcome.APPROVED:
                    not_approved += 1
            except GatewayUnavailable:
                not_approved += 1
            durations.append(time.perf_counter() - started)

    started = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(charges))), 600)
    finally:
        await adapter.aclose()
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(durations, n=100)
    return (
        f"| {rate or 'none':>6} | {charges:>7} | {charges / elapsed:>9.1f} "
        f"| {cuts[49] * 1000:>7.0f} | {cuts[98] * 1000:>7.0f} | {not_approved:>12} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", type=float, nargs="+", default=[25, 50, 100])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-flight", type=int, default=64)
    options = parser.parse_args()
    print(f"{options.in_flight} in flight, against localstripe on 127.0.0.1")
    print("| limit/s | charges | charges/s | p50 ms | p99 ms | not approved |")
    print("|---|---|---|---|---|---|")
    for rate in options.rates:
        charges = max(200, int((rate or 100) * options.seconds))
        with LocalStripe() as server:
            print(await measure(server.url, server.api_key, rate, charges, options.in_flight))


if __name__ == "__main__":
    asyncio.run(main())
