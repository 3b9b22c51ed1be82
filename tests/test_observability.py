"""Metrics move with payments and deliveries; a payment's log lines and its webhook's share a
request id; logs are JSON lines off a terminal."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import asyncpg
import httpx
import pytest

from service.log_config import JsonFormatter, RequestIdFilter
from tests.support.order_stub import Answer, OrderServiceStub
from tests.support.relay_helpers import wait_until
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

checks = load_test_queries()
SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


async def scrape(client: httpx.AsyncClient) -> dict[str, float]:
    """Every sample of /metrics, keyed by 'name{labels}'."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    samples: dict[str, float] = {}
    for line in response.text.splitlines():
        if match := SAMPLE.match(line):
            key = match["name"] + (f"{{{match['labels']}}}" if match["labels"] else "")
            samples[key] = float(match["value"])
    return samples


def grew(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


async def backlog_shows(client: httpx.AsyncClient, *, pending: int, dead: int) -> bool:
    """Whether the outbox gauges and readiness both report this backlog."""
    gauges = await scrape(client)
    ready = (await client.get("/health/ready")).json()
    return (
        (gauges["payments_outbox_pending"], gauges["payments_outbox_dead"])
        == (ready["outbox_pending"], ready["outbox_dead"])
        == (pending, dead)
    )


async def test_metrics_move_when_payments_refunds_and_deliveries_happen(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    settings = make_settings(database_url, order_stub.url, gateway={"decline_amounts": [666]})
    async with serve(settings) as service:
        client = service.client
        before = await scrape(client)
        paid = await client.post("/api/v1/payments/", json={"order_id": 1, "amount": 5000})
        declined = await client.post("/api/v1/payments/", json={"order_id": 2, "amount": 666})
        refund = await client.post(
            "/api/v1/payments/refund", json={"payment_id": paid.json()["id"], "reason": "r"}
        )
        assert (paid.status_code, declined.status_code, refund.status_code) == (201, 402, 201)
        await order_stub.wait_for_accepted(3)
        # Outcomes are recorded (and counted) just after the stub answers.
        for _ in range(100):
            after = await scrape(client)
            if grew(before, after, 'payments_webhook_attempts_total{outcome="delivered"}') >= 3:
                break
            await asyncio.sleep(0.05)
        assert grew(before, after, 'payments_created_total{result="completed"}') == 1
        assert grew(before, after, 'payments_created_total{result="failed"}') == 1
        assert grew(before, after, "payments_refunds_total") == 1
        assert grew(before, after, 'payments_webhook_attempts_total{outcome="delivered"}') == 3
        http_key = (
            'payments_http_requests_total{app_name="payments",method="POST",'
            'path="/api/v1/payments",status_code="201"}'
        )
        assert grew(before, after, http_key) == 1
        # The backlog figures are at most a second old (SharedBacklog).
        await wait_until(lambda: backlog_shows(client, pending=0, dead=0), 5, "no backlog")


async def test_webhook_retries_and_dead_events_show_in_metrics(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    order_stub.answer = lambda _: Answer(status=500)
    settings = make_settings(
        database_url, order_stub.url, outbox={"retry_schedule_seconds": (0.05, 0.05)}
    )
    async with serve(settings) as service:
        client = service.client
        before = await scrape(client)
        created = await client.post("/api/v1/payments/", json={"order_id": 7, "amount": 700})
        assert created.status_code == 201
        for _ in range(200):
            after = await scrape(client)
            if grew(before, after, 'payments_webhook_attempts_total{outcome="dead"}') >= 1:
                break
            await asyncio.sleep(0.05)
        assert grew(before, after, 'payments_webhook_attempts_total{outcome="retry"}') == 2
        assert grew(before, after, 'payments_webhook_attempts_total{outcome="dead"}') == 1
        # The outbox gauges are read for the scrapes themselves, not left to a timer: at
        # most a second old (SharedBacklog), they soon show the dead event.
        await wait_until(lambda: backlog_shows(client, pending=0, dead=1), 5, "the dead event")


async def test_metrics_answer_when_the_outbox_cannot_be_read(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    settings = make_settings(database_url, order_stub.url, database={"command_timeout": 0.5})
    async with serve(settings) as service:
        async with db.transaction():
            await checks.lock_outbox(db)
            # The gauges keep their last values; everything else is answered as usual.
            response = await service.client.get("/metrics")
        assert response.status_code == 200
        assert "payments_outbox_pending" in response.text
        assert "payments_http_requests_total" in response.text


async def test_a_payment_and_its_webhook_log_the_same_request_id(
    database_url: str, order_stub: OrderServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level(logging.DEBUG, logger="service")
    async with serve(make_settings(database_url, order_stub.url)) as service:
        response = await service.client.post(
            "/api/v1/payments/",
            json={"order_id": 42, "amount": 4200},
            headers={"X-Request-ID": "req-observability-42"},
        )
        assert response.status_code == 201
        assert response.headers["x-request-id"] == "req-observability-42"
        await order_stub.wait_for_accepted(1)
    tagged = [r for r in caplog.records if getattr(r, "request_id", None) == "req-observability-42"]
    loggers = {record.name for record in tagged}
    assert "service.commands.charging" in loggers  # the payment
    assert "service.outbox.delivery" in loggers  # its webhook, sent by the relay later


def test_log_lines_are_json_with_the_request_id_and_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "service.x", "levelname": "INFO", "msg": "payment %s", "args": (3,)}
    )
    record.request_id = "abc"
    record.order_id = 9
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "payment 3"
    assert line["request_id"] == "abc"
    assert line["order_id"] == 9
    assert line["level"] == "INFO" and line["logger"] == "service.x"


async def test_a_request_without_an_id_gets_one_echoed(service: RunningService) -> None:
    client = service.client
    first = await client.get("/health/live")
    second = await client.get("/health/live")
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
