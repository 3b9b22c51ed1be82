"""GET /api/v1/events and POST /api/v1/events/{id}/redeliver: the order webhooks as a pull API,
through HTTP, against the real database, the service's own relay and the Order Service stub."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from service.db.housekeeping import purge_delivered_events
from service.db.sql import load_queries
from service.domain.rules import PaymentStatus
from tests.support.order_stub import Answer, OrderServiceStub, ReceivedWebhook
from tests.support.payments import insert_processing, settle
from tests.support.problems import assert_problem
from tests.support.relay_helpers import relay_settings, running_relay, wait_until
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

EVENTS = "/api/v1/events"
# Three attempts, quickly: the first and one per scheduled retry.
QUICK_DEATH = (0.05, 0.05)


@pytest.fixture
async def svc(database_url: str, order_stub: OrderServiceStub) -> AsyncIterator[RunningService]:
    settings = relay_settings(database_url, order_stub.url, retry_schedule_seconds=QUICK_DEATH)
    async with serve(settings) as running:
        yield running


def refusing(*order_ids: int) -> Any:
    """The stub's answer: 422 (about the event, so each failure counts) for these orders."""

    def answer(call: ReceivedWebhook) -> Answer:
        return Answer(status=422, body="unknown order") if call.order_id in order_ids else Answer()

    return answer


async def pay(client: httpx.AsyncClient, order_id: int) -> dict[str, Any]:
    response = await client.post("/api/v1/payments/", json={"order_id": order_id, "amount": 1000})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def refund(client: httpx.AsyncClient, payment_id: int) -> None:
    body = {"payment_id": payment_id, "reason": "cancelled"}
    response = await client.post("/api/v1/payments/refund", json=body)
    assert response.status_code == 201, response.text


async def page(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get(EVENTS, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def all_pages(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        cursor = {"starting_after": found[-1]["id"]} if found else {}
        body = await page(client, **params, **cursor)
        found += body["data"]
        if not body["has_more"]:
            return found


async def listed(
    client: httpx.AsyncClient, count: int, *states: str, **params: Any
) -> list[dict[str, Any]]:
    """The listing once it holds `count` events (in these delivery states, in turn, when
    given): an event is listed once every older transaction has ended, and its state
    follows the relay."""
    found: list[dict[str, Any]] = []

    async def ready() -> bool:
        nonlocal found
        found = await all_pages(client, **params)
        return len(found) == count and (
            not states or [e["delivery"]["state"] for e in found] == list(states)
        )

    await wait_until(ready, what=f"{count} events listed in states {states}")
    return found


def compact(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


async def test_events_are_listed_oldest_first_for_everyone_and_per_order(
    svc: RunningService, order_stub: OrderServiceStub
) -> None:
    first = await pay(svc.client, 1)
    for order_id in (2, 3):
        await pay(svc.client, order_id)
    await refund(svc.client, first["id"])

    everyone = await listed(svc.client, 4, *["delivered"] * 4)
    assert [(e["order_id"], e["type"]) for e in everyone] == [
        (1, "payment.completed"),
        (2, "payment.completed"),
        (3, "payment.completed"),
        (1, "payment.refunded"),
    ]
    sent = {call.webhook_id: call for call in order_stub.accepted}
    for event in everyone:
        call = sent[event["id"]]  # the event id is the webhook-id
        assert compact(event["data"]) == call.raw_body  # the body, byte for byte as sent
        assert call.order_id == event["order_id"]
        delivery = event["delivery"]
        assert delivery["attempts"] == 1 and delivery["last_error"] is None
        assert delivery["delivered_at"] is not None and delivery["last_attempt_at"] is not None
    assert everyone[0]["payment_id"] == everyone[3]["payment_id"] == first["id"]
    assert everyone[3]["data"] == {
        "payment_status": "refunded",
        "transaction_id": first["transaction_id"],
    }

    one_order = await page(svc.client, order_id=1)
    assert one_order == {"data": [everyone[0], everyone[3]], "has_more": False}
    assert await page(svc.client, order_id=99) == {"data": [], "has_more": False}
    assert (await page(svc.client, limit=3))["has_more"] is True


async def test_pages_neither_repeat_nor_skip_while_events_are_created(svc: RunningService) -> None:
    for order_id in range(1, 13):
        await pay(svc.client, order_id)
    existing = [e["id"] for e in await listed(svc.client, 12)]

    async def keep_paying() -> None:
        for order_id in range(100, 130):
            await pay(svc.client, order_id)

    seen: list[dict[str, Any]] = []

    async def next_page() -> bool:
        cursor = {"starting_after": seen[-1]["id"]} if seen else {}
        seen.extend((await page(svc.client, limit=5, **cursor))["data"])
        return len(seen) >= 42

    paying = asyncio.create_task(keep_paying())
    while not paying.done():
        await next_page()
        await asyncio.sleep(0.005)  # let a payment or two commit between pages
    await paying
    await wait_until(next_page, what="the pages caught up with all 42 events")

    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)) == 42, "an event came twice"
    assert ids[:12] == existing
    assert ids == [e["id"] for e in await all_pages(svc.client, limit=100)]


async def test_an_event_that_commits_late_comes_after_the_pages_read_without_it(
    svc: RunningService, db: asyncpg.Connection
) -> None:
    await pay(svc.client, 1)
    [early] = await listed(svc.client, 1)
    processing = await insert_processing(db, 2)
    late = db.transaction()
    await late.start()
    # Queues order 2's event (drawing its seq) and stays uncommitted while order 3's commits.
    await settle(db, processing["id"], processing["transaction_id"], PaymentStatus.COMPLETED)
    await pay(svc.client, 3)
    # Listing order 3's now would let a client page past order 2's, which has the lower seq.
    assert (await page(svc.client, starting_after=early["id"]))["data"] == []
    await late.commit()

    after = await listed(svc.client, 2, starting_after=early["id"])
    assert [e["order_id"] for e in after] == [2, 3]


async def test_delivery_states_pending_delivered_dead_and_blocked(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    order_stub.answer = refusing(2)
    settings = relay_settings(
        database_url, order_stub.url, retry_schedule_seconds=QUICK_DEATH, relay_in_process=False
    )
    async with serve(settings) as svc:
        await pay(svc.client, 1)
        second = await pay(svc.client, 2)
        await refund(svc.client, second["id"])
        async with running_relay(database_url, settings):
            await listed(svc.client, 3, "delivered", "dead", "blocked")
        await pay(svc.client, 3)  # no relay runs now: it stays pending
        delivered, dead, blocked, pending = await listed(svc.client, 4)

    assert [e["delivery"]["state"] for e in (delivered, dead, blocked, pending)] == [
        "delivered",
        "dead",
        "blocked",
        "pending",
    ]
    assert dead["order_id"] == blocked["order_id"] == 2 and blocked["type"] == "payment.refunded"
    assert dead["delivery"]["attempts"] == 3
    assert dead["delivery"]["last_error"] == "HTTP 422: unknown order"
    assert dead["delivery"]["last_attempt_at"] is not None
    assert dead["delivery"]["delivered_at"] is None
    for waiting in (blocked, pending):
        assert waiting["delivery"] | {"state": None} == {
            "state": None,
            "attempts": 0,
            "last_attempt_at": None,
            "delivered_at": None,
            "last_error": None,
        }


async def redeliver(client: httpx.AsyncClient, event_id: str) -> list[str]:
    """POST .../redeliver: 202, the answer's `sending`."""
    response = await client.post(f"{EVENTS}/{event_id}/redeliver")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["id"] == event_id
    sending: list[str] = body["sending"]
    return sending


async def test_redelivering_a_delivered_event_sends_it_and_then_the_later_ones_of_its_order(
    svc: RunningService, order_stub: OrderServiceStub
) -> None:
    payment = await pay(svc.client, 1)
    await refund(svc.client, payment["id"])
    await pay(svc.client, 2)
    completed, refunded, other = await listed(svc.client, 3, *["delivered"] * 3)
    first_sends = {call.webhook_id: call.raw_body for call in order_stub.accepted}
    order_stub.accepted.clear()

    # Completed alone, after refunded, would leave order 1 "completed" at the Order Service:
    # the refund goes again after it.
    assert await redeliver(svc.client, completed["id"]) == [completed["id"], refunded["id"]]
    again = await order_stub.wait_for_accepted(2)
    assert [(c.webhook_id, c.raw_body) for c in again] == [
        (e["id"], first_sends[e["id"]]) for e in (completed, refunded)
    ]
    await listed(svc.client, 3, *["delivered"] * 3)

    # The latest event of its order goes alone.
    order_stub.accepted.clear()
    assert await redeliver(svc.client, refunded["id"]) == [refunded["id"]]
    await order_stub.wait_for_accepted(1)
    *_, last = await listed(svc.client, 3, *["delivered"] * 3)
    assert [c.webhook_id for c in order_stub.accepted] == [refunded["id"]]
    assert last["delivery"]["attempts"] == 1  # a fresh set of attempts
    assert other["id"] not in [c.webhook_id for c in order_stub.accepted]


async def test_redelivering_a_dead_or_a_blocked_event_sends_its_order_in_order(
    svc: RunningService, order_stub: OrderServiceStub
) -> None:
    order_stub.answer = refusing(1, 2)
    for order_id in (1, 2):
        await refund(svc.client, (await pay(svc.client, order_id))["id"])
    dead_1, blocked_1, dead_2, blocked_2 = await listed(
        svc.client, 4, "dead", "blocked", "dead", "blocked"
    )
    order_stub.answer = refusing()

    # Dead: it goes with a fresh set of attempts; the one blocked behind it follows.
    assert await redeliver(svc.client, dead_1["id"]) == [dead_1["id"]]
    # Blocked: the dead event it waits for goes first.
    assert await redeliver(svc.client, blocked_2["id"]) == [dead_2["id"], blocked_2["id"]]
    await listed(svc.client, 4, *["delivered"] * 4)
    for order_id, events in ((1, (dead_1, blocked_1)), (2, (dead_2, blocked_2))):
        calls = order_stub.accepted_for(order_id)
        assert [(c.webhook_id, c.raw_body) for c in calls] == [
            (e["id"], compact(e["data"])) for e in events
        ]


@pytest.mark.slow  # the Order Service holds a webhook for seconds on purpose
async def test_redelivering_while_a_later_event_of_its_order_is_in_flight_sends_it_after(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    held = 3.0
    # Each call in the order it arrived, with how long the stub took to answer it.
    calls: list[tuple[ReceivedWebhook, float]] = []

    def hold_the_first_refund(call: ReceivedWebhook) -> Answer:
        first_refund = call.body["payment_status"] == "refunded" and not any(
            earlier.body["payment_status"] == "refunded" for earlier, _ in calls
        )
        calls.append((call, held if first_refund else 0.0))
        return Answer(delay=calls[-1][1])

    order_stub.answer = hold_the_first_refund
    # A timeout beyond the hold: the held send succeeds, late.
    settings = relay_settings(
        database_url, order_stub.url, request_timeout_seconds=2 * held, lease_seconds=4 * held
    )
    async with serve(settings) as svc:
        payment = await pay(svc.client, 1)
        await listed(svc.client, 1, "delivered")
        await refund(svc.client, payment["id"])
        completed, refunded = await listed(svc.client, 2)

        async def refund_in_flight() -> bool:
            return len(calls) == 2

        await wait_until(refund_in_flight, what="the refunded webhook held by the Order Service")
        # Redelivered while `refunded` is being sent: `completed` must not overtake that
        # send, and `refunded` goes again after it, so the Order Service ends on the latest.
        sending = await redeliver(svc.client, completed["id"])
        assert sending == [completed["id"], refunded["id"]]
        await listed(svc.client, 2, "delivered", "delivered")

    sent = [(call.webhook_id, call.body["payment_status"]) for call, _ in calls]
    assert sent == [
        (completed["id"], "completed"),
        (refunded["id"], "refunded"),
        (completed["id"], "completed"),
        (refunded["id"], "refunded"),
    ]
    for (call, answered_in), (later, _) in itertools.pairwise(calls):
        assert later.received_at >= call.received_at + answered_in, "two sends overlapped"


async def test_an_event_past_retention_is_neither_listed_nor_redelivered(
    svc: RunningService, db: asyncpg.Connection
) -> None:
    await pay(svc.client, 1)
    [old] = await listed(svc.client, 1, "delivered")
    await load_test_queries().age_delivered_event(db, event_id=old["id"], days=8)
    assert await purge_delivered_events(load_queries(), db, retention_days=7) == 1

    assert await page(svc.client) == {"data": [], "has_more": False}
    missing = await svc.client.post(f"{EVENTS}/{old['id']}/redeliver")
    assert_problem(missing, 404, "not-found")
    gone_cursor = await svc.client.get(EVENTS, params={"starting_after": old["id"]})
    assert_problem(gone_cursor, 404, "not-found")


async def test_bad_parameters_and_ids_are_problems(svc: RunningService) -> None:
    for params in (
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"order_id": 0},
        {"order_id": "abc"},
        {"order_id": 2**63},
        {"starting_after": "abc"},
        {"starting_after": uuid.uuid4().hex},  # a UUID, but not as the contract writes one
    ):
        assert_problem(await svc.client.get(EVENTS, params=params), 400, "invalid-request")
    # A well-formed id of no event: not found, as a cursor and as an event to redeliver.
    no_such_cursor = await svc.client.get(EVENTS, params={"starting_after": str(uuid.uuid4())})
    assert_problem(no_such_cursor, 404, "not-found")
    unknown = await svc.client.post(f"{EVENTS}/{uuid.uuid4()}/redeliver")
    assert_problem(unknown, 404, "not-found")
    for not_a_uuid in ("42", "abc", uuid.uuid4().hex + "0"):
        answer = await svc.client.post(f"{EVENTS}/{not_a_uuid}/redeliver")
        assert_problem(answer, 400, "invalid-request")


async def test_with_tokens_configured_both_calls_need_one(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    settings = make_settings(database_url, order_stub.url, auth={"tokens": ("token-a",)})
    async with serve(settings) as svc:
        redeliver_url = f"{EVENTS}/{uuid.uuid4()}/redeliver"
        assert_problem(await svc.client.get(EVENTS), 401, "unauthorized")
        assert_problem(await svc.client.post(redeliver_url), 401, "unauthorized")
        token = {"Authorization": "Bearer token-a"}
        assert (await svc.client.get(EVENTS, headers=token)).status_code == 200
        assert_problem(await svc.client.post(redeliver_url, headers=token), 404, "not-found")


async def test_the_openapi_document_describes_both_calls(svc: RunningService) -> None:
    document = (await svc.client.get("/schema/openapi.json")).json()
    listing = document["paths"][EVENTS]["get"]
    redelivery = document["paths"][EVENTS + "/{event_id}/redeliver"]["post"]
    assert listing["tags"] == redelivery["tags"] == ["events"]
    assert set(listing["responses"]) == {"200", "400", "404", "503"}
    assert set(redelivery["responses"]) == {"202", "400", "404", "503"}
    schemas = document["components"]["schemas"]
    page_ref = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    event_ref = schemas[page_ref.rsplit("/", 1)[1]]["properties"]["data"]["items"]["$ref"]
    event = schemas[event_ref.rsplit("/", 1)[1]]["properties"]
    assert event["data"] == {"$ref": "#/components/schemas/WebhookBody"}
    assert set(event["type"]["enum"]) == {
        "payment.completed",
        "payment.failed",
        "payment.refunded",
    }
    delivery = schemas["Delivery"]["properties"]
    assert set(delivery["state"]["enum"]) == {"pending", "delivered", "dead", "blocked"}
