"""The service with `[gateway] kind = "stripe"`, end to end: its API, its reconciler and its
webhook endpoint against localstripe (a Stripe-compatible server, tests/support/localstripe.py)
on loopback, which makes the PaymentIntents and refunds, runs 3-D Secure through its
`_authenticate` route as a buyer's browser would, and sends its Stripe-signed events to the
service as Stripe sends them to a registered endpoint.

What localstripe never does (decline codes other than card_declined, events about refunds)
is shown against a loopback server answering as Stripe documents (tests/support/stripe_fakes.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import httpx
import pytest

from service.gateway.contract import ChargeOutcome, ChargeRequest
from service.gateway.stripe import StripeGateway
from tests.support.callbacks import signed_headers
from tests.support.listing import get_payment, wait_for_status
from tests.support.localstripe import LocalStripe
from tests.support.order_stub import OrderServiceStub
from tests.support.payments import insert_processing
from tests.support.problems import assert_problem
from tests.support.relay_helpers import wait_until
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries
from tests.support.stripe_fakes import (
    STRIPE_DECLINES,
    ScriptedStripe,
    card_error,
    event_body,
    signature,
)

# Stripe's library hands httpx the encoded form as `data=`, which httpx asks to be `content=`.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

checks: Any = load_test_queries()

PAYMENTS = "/api/v1/payments/"
BATCH = "/api/v1/payments/batch"
REFUND = "/api/v1/payments/refund"
WEBHOOK = "/api/v1/payments/webhook"
WEBHOOK_SECRET = "whsec_" + "service-endpoint-secret"
# The event types README.md's Stripe section asks to select for the endpoint.
EVENTS = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.refunded",
    "refund.updated",
]
AMOUNT = 89800

# localstripe's cards: approved (a PaymentMethod Stripe keeps for tests); declined when
# charged; 3-D Secure asked.
VISA = "pm_card_visa"
DECLINED_AT_CHARGE = "4000000000000341"
THREE_D_SECURE = "4000002500003155"

# The reconciler asks about a payment left PROCESSING a second old, every tenth of one.
FAST_RECONCILER = {
    "charge_timeout_seconds": 0.5,
    "reconcile_after_seconds": 1.0,
    "reconcile_interval_seconds": 0.1,
}
# The reconciler never asks in the time of a test: only an event settles.
NO_RECONCILER = {"reconcile_after_seconds": 10.0**8}


def stripe_settings(url: str, api_key: str, **gateway: Any) -> dict[str, Any]:
    return {
        "kind": "stripe",
        "stripe_api_key": api_key,
        "stripe_api_base": url,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "max_requests_per_second": 100.0,
    } | gateway


@asynccontextmanager
async def stripe_service(
    database_url: str,
    order_stub: OrderServiceStub,
    localstripe: LocalStripe,
    *,
    events: list[str] | None = EVENTS,
    **gateway: Any,
) -> AsyncIterator[RunningService]:
    """The service charging through localstripe, whose events it receives (None: none)."""
    settings = stripe_settings(localstripe.url, localstripe.api_key, **gateway)
    async with serve(make_settings(database_url, order_stub.url, gateway=settings)) as svc:
        # One endpoint for the module's server, moved to each test's service: events
        # of an earlier test's charges then reach this one, which ignores them (200) as
        # events about PaymentIntents it did not create.
        await localstripe.register_webhook(
            "service", f"{svc.url}{WEBHOOK}", WEBHOOK_SECRET, events if events else ["none"]
        )
        yield svc


@asynccontextmanager
async def scripted_service(
    database_url: str, order_stub: OrderServiceStub, **gateway: Any
) -> AsyncIterator[tuple[ScriptedStripe, RunningService]]:
    """The service charging through a loopback server that answers as scripted."""
    async with ScriptedStripe() as stripe_api:
        settings = stripe_settings(stripe_api.url, "sk_test_scripted", **gateway)
        async with serve(make_settings(database_url, order_stub.url, gateway=settings)) as svc:
            yield stripe_api, svc


async def paid_through(stripe_api: ScriptedStripe, svc: RunningService) -> Any:
    """Order 1 paid: the server answers its create with a succeeded PaymentIntent."""
    intent = {"id": "pi_scripted", "object": "payment_intent", "status": "succeeded"}
    stripe_api.answer = (200, intent, {})
    return (await create(svc.client, 1, VISA)).json()


async def create(
    client: httpx.AsyncClient, order_id: int, token: str | None, amount: int = AMOUNT
) -> httpx.Response:
    body: dict[str, Any] = {"order_id": order_id, "amount": amount}
    if token is not None:
        body["payment_method_token"] = token
    return await client.post(PAYMENTS, json=body)


def webhook_statuses(order_stub: OrderServiceStub, order_id: int) -> list[str]:
    return [w.body["payment_status"] for w in order_stub.accepted_for(order_id)]


async def stripe_signed(client: httpx.AsyncClient, body: bytes, secret: str) -> httpx.Response:
    headers = {"Stripe-Signature": signature(body, secret), "content-type": "application/json"}
    return await client.post(WEBHOOK, content=body, headers=headers)


# --- charges --------------------------------------------------------------------------------


async def test_an_approved_charge_is_201_completed_with_its_payment_intent(
    database_url: str,
    order_stub: OrderServiceStub,
    localstripe: LocalStripe,
    db: asyncpg.Connection,
) -> None:
    async with stripe_service(database_url, order_stub, localstripe) as svc:
        response = await create(svc.client, 1, VISA)
        await order_stub.wait_for_accepted(1)
        payment = response.json()
        [intent] = await localstripe.payment_intents(payment["transaction_id"])
        [sent] = await localstripe.creates(payment["transaction_id"])

        # Stripe's own payment_intent.succeeded, a second later, changes nothing.
        async def event_received() -> bool:
            transaction_id = uuid.UUID(payment["transaction_id"])
            count = await checks.count_gateway_events_of_transaction(
                db, transaction_id=transaction_id
            )
            return bool(count == 1)

        await wait_until(event_received, what="Stripe's event about the charge")
        after_event = await get_payment(svc.client, payment["id"])

    assert response.status_code == 201, response.text
    assert (payment["status"], payment["next_action"]) == ("COMPLETED", None)
    assert payment["gateway_reference"] == intent["id"] and intent["id"].startswith("pi_")
    assert (intent["amount"], intent["currency"], intent["status"]) == (AMOUNT, "jpy", "succeeded")
    assert intent["metadata"] == {
        "order_id": "1",
        "payment_id": str(payment["id"]),
        "transaction_id": payment["transaction_id"],
    }
    assert sent["idempotency_key"] == payment["transaction_id"]
    assert {field: after_event[field] for field in payment} == payment
    assert webhook_statuses(order_stub, 1) == ["completed"]


async def test_a_create_without_a_payment_method_is_400_and_stores_nothing(
    database_url: str,
    order_stub: OrderServiceStub,
    localstripe: LocalStripe,
    db: asyncpg.Connection,
) -> None:
    async with stripe_service(database_url, order_stub, localstripe) as svc:
        single = await create(svc.client, 1, None)
        batch = await svc.client.post(BATCH, json={"payments": [{"order_id": 2, "amount": 100}]})

    problem = assert_problem(single, 400, "invalid-payment")
    assert "payment_method_token" in problem["detail"]
    [item] = batch.json()["results"]
    assert item["status"] == 400 and "payment_method_token" in item["problem"]["detail"]
    assert await checks.count_payments(db) == 0


async def test_a_card_declined_at_charge_is_402_failed_with_stripes_message(
    database_url: str, order_stub: OrderServiceStub, localstripe: LocalStripe
) -> None:
    token = await localstripe.payment_method(DECLINED_AT_CHARGE)
    async with stripe_service(database_url, order_stub, localstripe) as svc:
        problem = assert_problem(await create(svc.client, 1, token), 402, "payment-declined")
        payment = await get_payment(svc.client, problem["payment_id"])
        await order_stub.wait_for_accepted(1)
    [intent] = await localstripe.payment_intents(payment["transaction_id"])

    assert (payment["status"], payment["failure_code"]) == ("FAILED", "card_declined")
    assert payment["failure_message"] == intent["last_payment_error"]["message"]
    assert (problem["failure_code"], problem["failure_message"]) == (
        "card_declined",
        payment["failure_message"],
    )
    assert webhook_statuses(order_stub, 1) == ["failed"]


async def test_a_declined_payment_retried_with_another_card_is_paid_by_it(
    database_url: str, order_stub: OrderServiceStub, localstripe: LocalStripe
) -> None:
    """`{}` charges the card of the previous attempt again (declined again); naming
    another payment method charges that one, under the new attempt's own key."""
    token = await localstripe.payment_method(DECLINED_AT_CHARGE)
    async with stripe_service(database_url, order_stub, localstripe) as svc:
        declined = assert_problem(await create(svc.client, 1, token), 402, "payment-declined")
        retry = f"/api/v1/payments/{declined['payment_id']}/retry"
        again = await svc.client.post(retry, json={})
        paid = await svc.client.post(retry, json={"payment_method_token": VISA})
        payment = await get_payment(svc.client, declined["payment_id"])
        await order_stub.wait_for_accepted(3)

    assert_problem(again, 402, "payment-declined")
    assert paid.status_code == 201, paid.text
    assert (paid.json()["status"], payment["status"]) == ("COMPLETED", "COMPLETED")
    attempts = payment["attempts"]
    assert [a["status"] for a in attempts] == ["FAILED", "FAILED", "COMPLETED"]
    charged_with = []
    for attempt in attempts:
        [sent] = await localstripe.creates(attempt["transaction_id"])
        assert sent["idempotency_key"] == attempt["transaction_id"]
        charged_with.append(parse_qs(sent["body"])["payment_method"])
    assert charged_with == [[token], [token], [VISA]]
    [intent] = await localstripe.payment_intents(attempts[-1]["transaction_id"])
    assert payment["gateway_reference"] == intent["id"]
    assert webhook_statuses(order_stub, 1) == ["failed", "failed", "completed"]


async def test_each_stripe_decline_reaches_the_client_as_the_services_code_and_stripes_message(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    """Through the service's API, against a server answering Stripe's card errors as its
    API reference words them (localstripe declines with card_declined alone)."""
    async with scripted_service(database_url, order_stub) as (stripe_api, svc):
        answers = []
        for order_id, (code, decline_code, _) in enumerate(STRIPE_DECLINES, start=1):
            message = f"Stripe says {decline_code or code} ({order_id})."
            stripe_api.answer = (402, card_error(code, decline_code, message), {})
            answers.append(await create(svc.client, order_id, VISA))
        stored = [
            await get_payment(svc.client, a.json()["payment_id"])
            for a in answers
            if a.status_code == 402
        ]

    for order_id, (answer, (code, decline_code, expected)) in enumerate(
        zip(answers, STRIPE_DECLINES, strict=True), start=1
    ):
        problem = assert_problem(answer, 402, "payment-declined")
        assert problem["failure_code"] == expected, (code, decline_code)
        assert problem["failure_message"] == f"Stripe says {decline_code or code} ({order_id})."
    assert [(p["status"], p["failure_code"]) for p in stored] == [
        ("FAILED", expected) for _, _, expected in STRIPE_DECLINES
    ]
    # The PaymentIntent Stripe names in its error (localstripe names none).
    assert {p["gateway_reference"] for p in stored} == {"pi_declined"}


# --- 3-D Secure: PENDING until the buyer authenticates ---------------------------------------


async def pending_payment(svc: RunningService, localstripe: LocalStripe) -> dict[str, Any]:
    """A payment of order 1 with a 3-D Secure card: 201 PENDING, waiting for its buyer."""
    token = await localstripe.payment_method(THREE_D_SECURE)
    response = await create(svc.client, 1, token)
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


async def test_3d_secure_is_pending_then_completed_by_stripes_event_once_the_buyer_passes(
    database_url: str, order_stub: OrderServiceStub, localstripe: LocalStripe
) -> None:
    async with stripe_service(database_url, order_stub, localstripe, **NO_RECONCILER) as svc:
        payment = await pending_payment(svc, localstripe)
        [intent] = await localstripe.payment_intents(payment["transaction_id"])
        listed = await svc.client.get(PAYMENTS, params={"status": "PENDING"})
        await asyncio.sleep(0.3)
        webhooks_while_pending = webhook_statuses(order_stub, 1)

        # The buyer's page hands the client secret to Stripe.js, which runs the challenge.
        client_secret = payment["next_action"]["client_secret"]
        assert await localstripe.authenticate(intent["id"], client_secret, True) == 200
        await wait_for_status(svc.client, payment["id"], "COMPLETED")
        completed = await get_payment(svc.client, payment["id"])
        await order_stub.wait_for_accepted(1)

    assert payment["status"] == "PENDING"
    assert payment["next_action"] == {"type": "authenticate", "client_secret": client_secret}
    assert client_secret == intent["client_secret"]
    assert [p["id"] for p in listed.json()["data"]] == [payment["id"]]
    assert webhooks_while_pending == []
    assert (completed["next_action"], completed["gateway_reference"]) == (None, intent["id"])
    assert webhook_statuses(order_stub, 1) == ["completed"]


async def test_3d_secure_failed_by_the_buyer_is_failed_authentication_required(
    database_url: str, order_stub: OrderServiceStub, localstripe: LocalStripe
) -> None:
    """localstripe sends no event when the buyer fails the challenge; Stripe sends
    payment_intent.payment_failed, here its envelope around the PaymentIntent as
    localstripe then has it."""
    async with stripe_service(database_url, order_stub, localstripe, **NO_RECONCILER) as svc:
        payment = await pending_payment(svc, localstripe)
        [intent] = await localstripe.payment_intents(payment["transaction_id"])
        client_secret = payment["next_action"]["client_secret"]
        assert await localstripe.authenticate(intent["id"], client_secret, False) == 200
        after = await localstripe.get(f"/v1/payment_intents/{intent['id']}")
        body = event_body("payment_intent.payment_failed", after)
        applied = await stripe_signed(svc.client, body, WEBHOOK_SECRET)
        assert applied.status_code == 200, applied.text
        failed = await get_payment(svc.client, payment["id"])
        await order_stub.wait_for_accepted(1)

    assert (failed["failure_code"], failed["next_action"]) == ("authentication_required", None)
    assert failed["failure_message"]
    assert webhook_statuses(order_stub, 1) == ["failed"]


async def test_a_buyer_who_never_authenticates_is_cancelled_at_stripe_and_failed(
    database_url: str, order_stub: OrderServiceStub, localstripe: LocalStripe
) -> None:
    waiting = FAST_RECONCILER | {"authentication_timeout_seconds": 1.0}
    async with stripe_service(database_url, order_stub, localstripe, **waiting) as svc:
        payment = await pending_payment(svc, localstripe)
        await wait_for_status(svc.client, payment["id"], "FAILED")
        failed = await get_payment(svc.client, payment["id"])
        await order_stub.wait_for_accepted(1)
        metrics = (await svc.client.get("/metrics")).text
    [intent] = await localstripe.payment_intents(payment["transaction_id"])

    assert intent["status"] == "canceled"
    assert failed["failure_code"] == "authentication_required"
    assert webhook_statuses(order_stub, 1) == ["failed"]
    assert "payments_waiting_for_buyer 0.0" in metrics


async def test_a_payment_waiting_for_its_buyer_is_counted_by_the_gauge(
    database_url: str, order_stub: OrderServiceStub, localstripe: LocalStripe
) -> None:
    async with stripe_service(database_url, order_stub, localstripe, **FAST_RECONCILER) as svc:
        await pending_payment(svc, localstripe)

        async def counted() -> bool:
            metrics = (await svc.client.get("/metrics")).text
            return "payments_waiting_for_buyer 1.0" in metrics

        await wait_until(counted, what="the gauge counting the PENDING payment")


# --- refunds -----------------------------------------------------------------------------------


async def test_a_refund_is_one_stripe_refund_under_the_refunds_own_key(
    database_url: str, order_stub: OrderServiceStub, localstripe: LocalStripe
) -> None:
    async with stripe_service(database_url, order_stub, localstripe) as svc:
        payment = (await create(svc.client, 1, VISA)).json()
        response = await svc.client.post(
            REFUND, json={"payment_id": payment["id"], "reason": "cancelled"}
        )
        refunded = await get_payment(svc.client, payment["id"])
        await order_stub.wait_for_accepted(2)
    made = (await localstripe.get("/v1/refunds", limit=100))["data"]
    [create_request] = await localstripe.creates(payment["transaction_id"], "/v1/refunds")
    refund = response.json()

    assert response.status_code == 201, response.text
    assert refund["status"] == "COMPLETED"
    assert refunded["status"] == "REFUNDED"
    [stripe_refund] = [r for r in made if r["payment_intent"] == payment["gateway_reference"]]
    assert (stripe_refund["amount"], stripe_refund["status"]) == (AMOUNT, "succeeded")
    # The adapter's key for a refund (service/gateway/stripe.py): its attempt's and its own id.
    assert create_request["idempotency_key"] == (
        f"refund-{payment['transaction_id']}-{refund['id']}"
    )
    assert webhook_statuses(order_stub, 1) == ["completed", "refunded"]


async def test_a_refund_stripe_refuses_is_402_and_the_payment_stays_completed(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    """Stripe's answer to a refund it cannot make (an invalid request about the charge),
    from a server answering as its API reference words it."""
    async with scripted_service(database_url, order_stub) as (stripe_api, svc):
        payment = await paid_through(stripe_api, svc)
        refusal = {
            "error": {
                "type": "invalid_request_error",
                "code": "charge_disputed",
                "message": "This charge has been disputed and cannot be refunded.",
            }
        }
        stripe_api.answers = [(400, refusal, {})]
        response = await svc.client.post(
            REFUND, json={"payment_id": payment["id"], "reason": "cancelled"}
        )
        stored = await get_payment(svc.client, payment["id"])

    problem = assert_problem(response, 402, "refund-failed")
    assert problem["failure_message"] == "This charge has been disputed and cannot be refunded."
    assert stored["status"] == "COMPLETED"
    assert [(r["status"], r["failure_message"]) for r in stored["refunds"]] == [
        ("FAILED", problem["failure_message"])
    ]


# --- Stripe's events ---------------------------------------------------------------------------


async def test_stripes_event_settles_a_payment_whose_answer_never_came(
    database_url: str,
    order_stub: OrderServiceStub,
    localstripe: LocalStripe,
    db: asyncpg.Connection,
) -> None:
    """The charge reached Stripe, its answer did not reach the service (which then left
    the payment PROCESSING with no reference); Stripe's payment_intent.succeeded settles it."""
    row = await insert_processing(db, 1, Decimal(AMOUNT), payment_method_token=VISA)
    async with stripe_service(database_url, order_stub, localstripe, **NO_RECONCILER) as svc:
        assert (await get_payment(svc.client, row["id"]))["status"] == "PROCESSING"
        charged = await charge_as_the_service_did(localstripe, row)
        await wait_for_status(svc.client, row["id"], "COMPLETED")
        payment = await get_payment(svc.client, row["id"])
        await order_stub.wait_for_accepted(1)

    assert charged.outcome is ChargeOutcome.APPROVED
    assert payment["gateway_reference"] == charged.reference
    assert webhook_statuses(order_stub, 1) == ["completed"]


async def charge_as_the_service_did(localstripe: LocalStripe, row: Any) -> Any:
    """The charge of a payment's attempt, sent as the service sends it (its adapter, the
    attempt's transaction_id, the payment's token), whose answer is then dropped."""
    adapter = StripeGateway(
        api_key=localstripe.api_key,
        api_base=localstripe.url,
        timeout_seconds=10.0,
        max_requests_per_second=100,
    )
    try:
        return await adapter.charge(
            ChargeRequest(
                transaction_id=row["transaction_id"],
                payment_id=row["id"],
                order_id=row["order_id"],
                amount=row["amount"],
                payment_method_token=VISA,
                metadata={},
            )
        )
    finally:
        await adapter.aclose()


async def test_an_event_twice_is_applied_once_and_a_badly_signed_one_changes_nothing(
    database_url: str, order_stub: OrderServiceStub, localstripe: LocalStripe
) -> None:
    async with stripe_service(
        database_url, order_stub, localstripe, events=None, **NO_RECONCILER
    ) as svc:
        payment = await pending_payment(svc, localstripe)
        [intent] = await localstripe.payment_intents(payment["transaction_id"])
        client_secret = payment["next_action"]["client_secret"]
        await localstripe.authenticate(intent["id"], client_secret, True)
        succeeded = await localstripe.get(f"/v1/payment_intents/{intent['id']}")
        body = event_body("payment_intent.succeeded", succeeded)

        forged = await stripe_signed(svc.client, body, "whsec_not-the-endpoints-secret")
        after_forged = await get_payment(svc.client, payment["id"])
        first = await stripe_signed(svc.client, body, WEBHOOK_SECRET)
        again = await stripe_signed(svc.client, body, WEBHOOK_SECRET)
        await order_stub.wait_for_accepted(1)
        await asyncio.sleep(0.3)  # a second webhook, were there one, would be on its way
        # With Stripe the gateway, the simulator's Standard-Webhooks callbacks are refused.
        callback = json.dumps({"transaction_id": payment["transaction_id"], "status": "failed"})
        standard = await svc.client.post(
            WEBHOOK,
            content=callback,
            headers=signed_headers(callback.encode()),
        )
        final = await get_payment(svc.client, payment["id"])

    assert_problem(forged, 401, "invalid-signature")
    assert after_forged["status"] == "PENDING"
    assert (first.status_code, first.json()) == (
        200,
        {"payment_id": payment["id"], "status": "COMPLETED"},
    )
    assert (again.status_code, again.json()) == (200, first.json())
    assert webhook_statuses(order_stub, 1) == ["completed"]
    assert_problem(standard, 401, "invalid-signature")
    assert final["status"] == "COMPLETED"


async def test_an_event_about_a_payment_intent_of_someone_else_is_200_and_ignored(
    database_url: str, order_stub: OrderServiceStub, localstripe: LocalStripe
) -> None:
    others = {"id": "pi_not_ours", "object": "payment_intent", "status": "succeeded"}
    foreign = others | {"metadata": {"transaction_id": str(uuid.uuid4())}}
    async with stripe_service(database_url, order_stub, localstripe, events=None) as svc:
        answers = [
            await stripe_signed(
                svc.client, event_body("payment_intent.succeeded", intent), WEBHOOK_SECRET
            )
            for intent in (others, foreign)
        ]
        other_type = await stripe_signed(
            svc.client, event_body("customer.created", {"id": "cus_1"}), WEBHOOK_SECRET
        )

    assert [a.status_code for a in answers] == [200, 200]
    assert all("ignored" in a.json() for a in answers)
    assert other_type.status_code == 200 and "ignored" in other_type.json()


async def test_stripes_refund_event_settles_a_pending_refund(
    database_url: str, order_stub: OrderServiceStub, localstripe: LocalStripe
) -> None:
    """A refund Stripe accepted for later (status pending), then refund.updated succeeded.
    localstripe refunds at once and sends no refund events: the Stripe API answers are a
    scripted server's, the event is Stripe's envelope around the refund it names."""
    async with scripted_service(database_url, order_stub, **NO_RECONCILER) as (stripe_api, svc):
        payment = await paid_through(stripe_api, svc)
        refund_object = {
            "id": "re_scripted",
            "object": "refund",
            "amount": AMOUNT,
            "payment_intent": "pi_scripted",
            "status": "pending",
        }
        stripe_api.answers = [(200, refund_object, {})]
        accepted = await svc.client.post(
            REFUND, json={"payment_id": payment["id"], "reason": "cancelled"}
        )
        refund_id = accepted.json()["id"]
        metadata = {
            "order_id": "1",
            "payment_id": str(payment["id"]),
            "transaction_id": payment["transaction_id"],
            "refund_id": str(refund_id),
        }
        body = event_body(
            "refund.updated", refund_object | {"status": "succeeded", "metadata": metadata}
        )
        applied = await stripe_signed(svc.client, body, WEBHOOK_SECRET)
        refunded = await get_payment(svc.client, payment["id"])
        await order_stub.wait_for_accepted(2)

    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "PENDING"
    assert applied.status_code == 200, applied.text
    assert applied.json() == {
        "payment_id": payment["id"],
        "status": "COMPLETED",
        "refund_id": refund_id,
    }
    assert refunded["status"] == "REFUNDED"
    assert [r["status"] for r in refunded["refunds"]] == ["COMPLETED"]
    assert webhook_statuses(order_stub, 1) == ["completed", "refunded"]


async def test_the_keys_appear_in_no_answer_log_or_metric(
    database_url: str, order_stub: OrderServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    """Stripe refusing the key (401) is the gateway unavailable to the client, and neither
    the secret key nor the webhook secret shows anywhere the service writes."""
    api_key, webhook_secret = "sk_test_" + uuid.uuid4().hex, "whsec_" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG)
    async with ScriptedStripe() as stripe_api:
        gateway = stripe_settings(stripe_api.url, api_key, stripe_webhook_secret=webhook_secret)
        settings = make_settings(database_url, order_stub.url, gateway=gateway)
        async with serve(settings) as svc:
            stripe_api.answer = (401, {"error": {"message": f"Invalid API Key: {api_key}"}}, {})
            refused = await create(svc.client, 1, VISA)
            forged = await stripe_signed(svc.client, b"{}", "whsec_other")
            metrics = (await svc.client.get("/metrics")).text
            shown = [refused.text, forged.text, metrics, caplog.text, repr(settings)]

    assert_problem(refused, 503, "gateway-unavailable")
    assert caplog.records, "nothing was logged: the check would prove nothing"
    for text in shown:
        assert api_key not in text and webhook_secret not in text


# --- the reconciler ----------------------------------------------------------------------------


async def test_a_crash_before_the_charge_is_reconciled_by_one_charge(
    database_url: str,
    order_stub: OrderServiceStub,
    localstripe: LocalStripe,
    db: asyncpg.Connection,
) -> None:
    """A crash between the PROCESSING commit and the charge leaves this row: the
    reconciler sends the charge (under the attempt's Idempotency-Key), once."""
    row = await insert_processing(db, 1, Decimal(AMOUNT), payment_method_token=VISA)
    await checks.age_payment(db, payment_id=row["id"], seconds=5)
    async with stripe_service(database_url, order_stub, localstripe, **FAST_RECONCILER) as svc:
        await wait_for_status(svc.client, row["id"], "COMPLETED")
        await asyncio.sleep(0.5)  # five more rounds of the reconciler
        payment = await get_payment(svc.client, row["id"])
        await order_stub.wait_for_accepted(1)

    [sent] = await localstripe.creates(row["transaction_id"])
    [intent] = await localstripe.payment_intents(row["transaction_id"])
    assert sent["idempotency_key"] == str(row["transaction_id"])
    assert payment["gateway_reference"] == intent["id"]
    assert webhook_statuses(order_stub, 1) == ["completed"]


async def test_a_charge_whose_answer_was_lost_is_reconciled_without_a_second_charge(
    database_url: str,
    order_stub: OrderServiceStub,
    localstripe: LocalStripe,
    db: asyncpg.Connection,
) -> None:
    """A crash after the charge reached Stripe and before its answer was committed: the
    reconciler sends the same create under the same Idempotency-Key, and Stripe answers
    with the PaymentIntent it made then."""
    row = await insert_processing(db, 1, Decimal(AMOUNT), payment_method_token=VISA)
    charged = await charge_as_the_service_did(localstripe, row)
    await checks.age_payment(db, payment_id=row["id"], seconds=5)
    async with stripe_service(
        database_url, order_stub, localstripe, events=None, **FAST_RECONCILER
    ) as svc:
        await wait_for_status(svc.client, row["id"], "COMPLETED")
        payment = await get_payment(svc.client, row["id"])
        await order_stub.wait_for_accepted(1)

    first, again = await localstripe.creates(row["transaction_id"])
    assert first["idempotency_key"] == again["idempotency_key"] == str(row["transaction_id"])
    [intent] = await localstripe.payment_intents(row["transaction_id"])
    assert payment["gateway_reference"] == intent["id"] == charged.reference
    assert webhook_statuses(order_stub, 1) == ["completed"]


async def test_a_charge_stripe_is_still_processing_is_201_processing_then_read_not_resent(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    """Stripe's `processing` (localstripe never answers it): the payment stays PROCESSING
    with its PaymentIntent, which the reconciler then reads instead of sending the create
    again."""
    async with scripted_service(database_url, order_stub, **FAST_RECONCILER) as (stripe_api, svc):
        intent = {"id": "pi_slow", "object": "payment_intent", "status": "processing"}
        stripe_api.answers = [(200, intent, {})]
        stripe_api.answer = (200, intent | {"status": "succeeded"}, {})
        response = await create(svc.client, 1, VISA)
        await wait_for_status(svc.client, response.json()["id"], "COMPLETED")
        await order_stub.wait_for_accepted(1)

    assert response.status_code == 201, response.text
    assert (response.json()["status"], response.json()["gateway_reference"]) == (
        "PROCESSING",
        "pi_slow",
    )
    sent = [(method, path) for method, path, _ in stripe_api.received]
    assert sent[0] == ("POST", "/v1/payment_intents")
    assert set(sent[1:]) == {("GET", "/v1/payment_intents/pi_slow")}
    assert webhook_statuses(order_stub, 1) == ["completed"]


# --- bulk ---------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_batch_of_200_orders_through_stripe_meets_no_429(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    """Stripe's test mode allows 25 requests a second: the service keeps to them
    (max_requests_per_second) instead of meeting 429s, each charge waiting for its turn."""
    with LocalStripe(rate_limit=25) as limited:
        pacing = {"max_requests_per_second": 25.0, "charge_timeout_seconds": 30.0}
        async with stripe_service(database_url, order_stub, limited, events=None, **pacing) as svc:
            items = [
                {"order_id": n, "amount": 1000 + n, "payment_method_token": VISA}
                for n in range(1, 201)
            ]
            response = await svc.client.post(BATCH, json={"payments": items}, timeout=60)
            await order_stub.wait_for_accepted(200, within=30)
        stats = await limited.stats()

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201] * 200
    assert {r["payment"]["status"] for r in results} == {"COMPLETED"}
    assert stats["answered_429"] == 0
    assert stats["requests"] == 200  # one create per order, none sent again
