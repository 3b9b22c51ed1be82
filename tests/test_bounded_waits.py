"""Every wait for the database is bounded, and the cheap endpoints cannot starve payments.

With `payments` locked by another session and the pool exhausted, reads by id and keyed
creates (their Idempotency-Key bookkeeping included) answer within the acquire bound plus
the statement bound: a 503 problem+json, never a 500, never a hang. And during an Order
Service outage that left a large backlog, a flood of /metrics and /health/ready scrapes runs
at most one backlog query at a time, so creates go on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.order_stub import OrderServiceStub
from tests.support.problems import assert_problem
from tests.support.service import serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()

PAYMENTS = "/api/v1/payments/"
# Two connections; each acquire, and each statement, waits at most COMMAND_TIMEOUT.
COMMAND_TIMEOUT = 1.0
SMALL_POOL = {"pool_max_size": 2, "pool_min_size": 1, "command_timeout": COMMAND_TIMEOUT}
LOCK_SECONDS = 20.0
CONCURRENT_READS = CONCURRENT_CREATES = 20
# A read waits for one connection and one statement. A keyed create waits for four at
# most: the key's claim, the insert group in flight when it arrives, its own insert
# group, the key's release. Requests that queue for a connection without a bound wait
# behind each other's statements, and for the lock itself.
ANSWER_WITHIN_SECONDS = 4 * (COMMAND_TIMEOUT + COMMAND_TIMEOUT)

BACKLOG = 200_000
SCRAPERS = 50
SCRAPE_SECONDS = 6.0


async def timed(
    client: httpx.AsyncClient, method: str, path: str, **kwargs: Any
) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = await client.request(method, path, **kwargs)
    return time.monotonic() - started, response


@pytest.mark.slow
async def test_reads_and_keyed_creates_answer_in_bounded_time_while_payments_is_locked(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    settings = make_settings(database_url, order_stub.url, database=SMALL_POOL)
    async with serve(settings) as service:
        created = await service.client.post(PAYMENTS, json={"order_id": 1, "amount": 1000})
        assert created.status_code == 201, created.text
        payment = f"/api/v1/payments/{created.json()['id']}"
        # Patient enough to see a request that waits for the lock to go.
        async with httpx.AsyncClient(base_url=service.url, timeout=3 * LOCK_SECONDS) as client:
            async with db.transaction():
                await checks.lock_payments_table(db)
                reads = [timed(client, "GET", payment) for _ in range(CONCURRENT_READS)]
                creates = [
                    timed(
                        client,
                        "POST",
                        PAYMENTS,
                        json={"order_id": 100 + n, "amount": 1000},
                        headers={"Idempotency-Key": f"locked-{n}"},
                    )
                    for n in range(CONCURRENT_CREATES)
                ]
                answers = asyncio.gather(*reads, *creates)
                # Held for LOCK_SECONDS, or until every request has its answer.
                await asyncio.wait({answers}, timeout=LOCK_SECONDS)
            answered = await answers
        read_again = await service.client.get(payment)
        created_after = await service.client.post(
            PAYMENTS, json={"order_id": 2, "amount": 1000}, headers={"Idempotency-Key": "after"}
        )

    longest = max(seconds for seconds, _ in answered)
    statuses = sorted(response.status_code for _, response in answered)
    print(f"\n{len(answered)} requests with payments locked: longest answer {longest:.2f}s")
    print(f"statuses {statuses}")
    assert longest < ANSWER_WITHIN_SECONDS, [
        f"{response.request.method} {response.request.url.path}: {seconds:.2f}s"
        for seconds, response in answered
        if seconds >= ANSWER_WITHIN_SECONDS
    ]
    for _, response in answered:
        # Nothing can be read or created while the table is locked: the contract's quick 503.
        if response.status_code != 503:
            assert response.status_code in (200, 201), response.text
        else:
            assert_problem(response, 503, "database-unavailable")
    assert read_again.status_code == 200, read_again.text
    assert created_after.status_code == 201, created_after.text


@pytest.mark.slow
async def test_a_flood_of_scrapes_runs_one_backlog_query_at_a_time_and_creates_go_on(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    # No relay here: the Order Service is down and the backlog stays.
    settings = make_settings(database_url, order_stub.url, outbox={"relay_in_process": False})
    async with serve(settings) as service:
        first = await service.client.post(PAYMENTS, json={"order_id": 1, "amount": 1000})
        assert first.status_code == 201, first.text
        await checks.queue_undelivered_events(db, payment_id=first.json()["id"], count=BACKLOG)
        stop = asyncio.Event()
        running: list[int] = []
        creates: list[httpx.Response] = []
        scrapes: list[httpx.Response] = []

        async def scrape(number: int) -> None:
            path = "/metrics" if number % 2 else "/health/ready"
            while not stop.is_set():
                scrapes.append(await service.client.get(path))

        async def sample() -> None:
            while not stop.is_set():
                running.append(int(await checks.count_running_backlog_queries(db)))
                await asyncio.sleep(0.005)

        async def create() -> None:
            order_id = 2
            while not stop.is_set():
                creates.append(
                    await service.client.post(PAYMENTS, json={"order_id": order_id, "amount": 1000})
                )
                order_id += 1

        tasks = [asyncio.create_task(scrape(n)) for n in range(SCRAPERS)]
        tasks += [asyncio.create_task(sample()), asyncio.create_task(create())]
        await asyncio.sleep(SCRAPE_SECONDS)
        stop.set()
        await asyncio.gather(*tasks)
        ready = (await service.client.get("/health/ready")).json()

    print(
        f"\n{len(creates)} creates while {SCRAPERS} clients scraped {len(scrapes)} times; "
        f"backlog queries running at once: at most {max(running)} over {len(running)} samples"
    )
    assert len(running) > 100  # the sampling ran throughout
    assert max(running) <= 1, max(running)
    assert creates and all(response.status_code == 201 for response in creates), [
        response.text for response in creates if response.status_code != 201
    ][:3]
    # Busy is not unready: every scrape answered, readiness included.
    assert all(response.status_code == 200 for response in scrapes), [
        response.text for response in scrapes if response.status_code != 200
    ][:3]
    assert ready["outbox_pending"] >= BACKLOG
