"""Order webhooks reach a real HTTP Order Service: body, headers, signature, retries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import asyncpg
import msgspec
import pytest

from service.outbox.relay import SENDS_WHILE_BATCHING
from service.request_context import answering_a_batch
from service.signing import secret_key, verify
from tests.support.order_stub import Answer, OrderServiceStub, ReceivedWebhook
from tests.support.payments import find_payment
from tests.support.relay_helpers import (
    all_events,
    create_payments,
    refund,
    relay_settings,
    running_relay,
    wait_all_delivered,
)
from tests.support.sql import load_test_queries

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"order-service-test-secret-0123456").decode()


async def test_payment_sends_webhook_with_exact_body_and_signed_headers(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    settings = relay_settings(database_url, order_stub.url, webhook_secret=WEBHOOK_SECRET)
    async with running_relay(database_url, settings):
        [payment_id] = await create_payments(database_url, [4242])
        [call] = await order_stub.wait_for_accepted(1)

    payment = await find_payment(db, payment_id)
    [event] = await all_events(db)
    expected = (
        b'{"payment_status":"completed","transaction_id":"%s"}'
        % str(payment["transaction_id"]).encode()
    )
    assert call.path == "/api/v1/orders/4242/webhook"
    assert call.raw_body == expected
    assert call.body == {
        "payment_status": "completed",
        "transaction_id": str(payment["transaction_id"]),
    }
    assert call.headers["content-type"] == "application/json"
    assert call.headers["webhook-id"] == str(event["id"])
    assert abs(int(call.headers["webhook-timestamp"]) - time.time()) < 300

    key = secret_key(WEBHOOK_SECRET)
    verify(
        key,
        call.headers["webhook-id"],
        call.headers["webhook-timestamp"],
        call.headers["webhook-signature"],
        call.raw_body,
    )
    # The scheme by hand, independent of service.signing.
    raw_key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    signed = f"{call.headers['webhook-id']}.{call.headers['webhook-timestamp']}.".encode()
    digest = hmac.new(raw_key, signed + call.raw_body, hashlib.sha256).digest()
    assert call.headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()

    assert event["delivered_at"] is not None
    assert event["attempts"] == 1
    assert event["claimed_by"] is None


async def test_unsigned_when_no_secret(database_url: str, order_stub: OrderServiceStub) -> None:
    async with running_relay(database_url, relay_settings(database_url, order_stub.url)):
        await create_payments(database_url, [7])
        [call] = await order_stub.wait_for_accepted(1)
    assert "webhook-signature" not in call.headers
    assert call.headers["webhook-id"]


async def test_webhooks_reuse_kept_alive_connections(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    # An answer with a body: a sender that leaves it unread loses the connection each time.
    order_stub.answer = lambda _: Answer(body='{"ok": true}')
    settings = relay_settings(database_url, order_stub.url, concurrency=4)
    async with running_relay(database_url, settings):
        await create_payments(database_url, list(range(1, 101)))
        accepted = await order_stub.wait_for_accepted(100)
    assert len({call.peer for call in accepted}) <= 4


async def test_500_then_200_is_retried_and_delivered_once(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    def first_two_fail(call: ReceivedWebhook) -> Answer:
        tries = sum(1 for c in order_stub.received if c.webhook_id == call.webhook_id)
        return Answer(status=500) if tries <= 2 else Answer()

    order_stub.answer = first_two_fail
    async with running_relay(database_url, relay_settings(database_url, order_stub.url)):
        await create_payments(database_url, [11])
        await order_stub.wait_for_accepted(1)
        await wait_all_delivered(db)

    [event] = await all_events(db)
    assert [c.webhook_id for c in order_stub.received] == [str(event["id"])] * 3
    assert len(order_stub.accepted) == 1
    assert event["attempts"] == 3
    assert event["last_error"].startswith("HTTP 500")


@pytest.mark.slow
async def test_retry_after_overrides_the_schedule(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    def busy_once(call: ReceivedWebhook) -> Answer:
        if len(order_stub.received) == 1:
            return Answer(status=503, headers={"Retry-After": "2"})
        return Answer()

    order_stub.answer = busy_once
    async with running_relay(database_url, relay_settings(database_url, order_stub.url)):
        await create_payments(database_url, [12])
        await order_stub.wait_for_accepted(1, 15)

    first, second = order_stub.received
    assert first.webhook_id == second.webhook_id
    # The schedule alone would have retried after about 0.05 s.
    assert second.received_at - first.received_at >= 1.5
    [event] = await all_events(db)
    assert event["attempts"] == 2 and event["delivered_at"] is not None


@pytest.mark.slow
async def test_slow_answers_beyond_the_timeout_are_retried(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    def slow_once(call: ReceivedWebhook) -> Answer:
        return Answer(delay=2.0) if len(order_stub.received) == 1 else Answer()

    order_stub.answer = slow_once
    settings = relay_settings(database_url, order_stub.url, request_timeout_seconds=0.3)
    async with running_relay(database_url, settings):
        await create_payments(database_url, [13])
        await wait_all_delivered(db)

    [event] = await all_events(db)
    assert event["attempts"] == 2
    assert "timed out" in event["last_error"]
    assert [c.webhook_id for c in order_stub.received] == [str(event["id"])] * 2
    # The stub still "accepts" the first call after its delay; the relay had given up on it.
    assert len(order_stub.accepted) >= 1


def test_body_is_the_contract_body_only() -> None:
    from service.outbox.events import WebhookBody

    tx = "3b1f8f0e-4f7e-4a57-9a55-0f4d7b1f2c11"
    body = msgspec.json.decode(
        b'{"transaction_id": "%s", "payment_status": "refunded", "x": 1}' % tx.encode(),
        type=WebhookBody,
    )
    expected = b'{"payment_status":"refunded","transaction_id":"%s"}' % tx.encode()
    assert msgspec.json.encode(body) == expected


async def test_the_stored_body_is_sent_and_signed_byte_for_byte(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    checks = load_test_queries()
    _, refunded = await create_payments(database_url, [21, 22])
    await refund(db, refunded)
    first, second, third = await all_events(db)
    # Queued compact, as sent: what the events API shows as `data`, without the spaces.
    stored = await checks.event_body_text(db, event_id=first["id"])
    assert stored.encode() == json.dumps(json.loads(first["body"]), separators=(",", ":")).encode()
    # The same JSON in another key order: the relay posts the stored text as it is,
    # never a re-encoding of it.
    transaction_id = json.loads(first["body"])["transaction_id"]
    reordered = f'{{"transaction_id":"{transaction_id}","payment_status":"completed"}}'
    await checks.set_event_body_text(db, event_id=first["id"], body_text=reordered)
    # As an event queued before the column existed (or by the release before it): sent
    # compact, as the relay always sent it.
    await checks.set_event_body_text(db, event_id=third["id"], body_text=None)

    settings = relay_settings(database_url, order_stub.url, webhook_secret=WEBHOOK_SECRET)
    async with running_relay(database_url, settings):
        await order_stub.wait_for_accepted(3)
        await wait_all_delivered(db)

    sent = {call.webhook_id: call for call in order_stub.accepted}
    assert sent[str(first["id"])].raw_body == reordered.encode()
    for event in (second, third):
        compact = json.dumps(json.loads(event["body"]), separators=(",", ":"))
        assert sent[str(event["id"])].raw_body == compact.encode()
    for call in sent.values():
        verify(
            secret_key(WEBHOOK_SECRET),
            call.headers["webhook-id"],
            call.headers["webhook-timestamp"],
            call.headers["webhook-signature"],
            call.raw_body,
        )


def most_in_flight(received: list[ReceivedWebhook], answer_seconds: float) -> int:
    """The most webhooks the stub was answering at once, each taking `answer_seconds`."""
    arrivals = sorted(webhook.received_at for webhook in received)
    return max(
        (sum(1 for t in arrivals if start <= t < start + answer_seconds) for start in arrivals),
        default=0,
    )


async def test_while_a_batch_is_answered_the_relay_sends_few_webhooks_at_once(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    """A batch's answer comes first: while one is answered in the relay's process, it
    keeps SENDS_WHILE_BATCHING sends going instead of `concurrency`, then all again."""
    answer_seconds = 0.4
    order_stub.answer = lambda _: Answer(delay=answer_seconds)
    await create_payments(database_url, list(range(1, 41)))
    settings = relay_settings(database_url, order_stub.url, concurrency=32)
    async with running_relay(database_url, settings):
        with answering_a_batch():  # as the batch endpoint does around its work
            await order_stub.wait_for_accepted(8, within=15)
            while_batching = most_in_flight(order_stub.received, answer_seconds)
            with_all_slots = len(order_stub.received)
        # The batch answered: the sends held back go, with every slot.
        await order_stub.wait_for_accepted(40, within=15)
    after = most_in_flight(order_stub.received[with_all_slots:], answer_seconds)

    assert while_batching == SENDS_WHILE_BATCHING
    assert after > SENDS_WHILE_BATCHING
