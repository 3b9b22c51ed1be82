"""The Stripe gateway adapter against a real Stripe-compatible server, localstripe.

localstripe runs as a child process (tests/support/localstripe.py) and is asked exactly as
Stripe would be. What it cannot show is shown by small loopback servers that answer as
Stripe documents (a decline code other than card_declined, a 5xx, a 429, a refused key) or
never answer; each such test says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import logging
import secrets
import socket
import time
import traceback
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from service.gateway.contract import (
    ChargeDecision,
    ChargeOutcome,
    ChargeRequest,
    GatewayEvent,
    GatewayUnavailable,
    MalformedEvent,
    NextAction,
    RefundOutcome,
    RefundRequest,
)
from service.gateway.stripe import RequestPacer, StripeGateway
from service.signing import SignatureError
from tests.support import localstripe as launcher
from tests.support.localstripe import LocalStripe
from tests.support.relay_helpers import wait_until
from tests.support.stripe_fakes import (
    STRIPE_DECLINES,
    ScriptedStripe,
    card_error,
    event_body,
    signature,
)

# Stripe's library hands httpx the encoded form as `data=`, which httpx asks to be `content=`.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

WEBHOOK_SECRET = "whsec_" + "test-endpoint-secret"
AMOUNT = Decimal(89800)

VISA = "4242424242424242"
# localstripe's cards: declined when charged; 3-D Secure asked; 3-D Secure, then declined.
DECLINED_AT_CHARGE = "4000000000000341"
THREE_D_SECURE = "4000002500003155"
THREE_D_SECURE_THEN_DECLINED = "4000008260003178"


@pytest.fixture
async def gateway(localstripe: LocalStripe) -> AsyncIterator[StripeGateway]:
    adapter = StripeGateway(
        api_key=localstripe.api_key,
        api_base=localstripe.url,
        timeout_seconds=10.0,
        max_requests_per_second=100,
        webhook_secrets=(WEBHOOK_SECRET,),
    )
    yield adapter
    await adapter.aclose()


def charge_request(token: str | None, **fields: Any) -> ChargeRequest:
    values: dict[str, Any] = {
        "transaction_id": uuid.uuid4(),
        "payment_id": 7,
        "order_id": 1234,
        "amount": AMOUNT,
        "payment_method_token": token,
        "metadata": {"shop": "tokyo-1", "campaign": "winter"},
    }
    return ChargeRequest(**(values | fields))


def answered(request: ChargeRequest, decision: ChargeDecision) -> ChargeRequest:
    """The request as the service asks about it once the gateway answered it."""
    return ChargeRequest(
        request.transaction_id,
        request.payment_id,
        request.order_id,
        request.amount,
        request.payment_method_token,
        request.metadata,
        decision.reference,
    )


def refund_request(
    charge: ChargeRequest, charge_reference: str | None, **fields: Any
) -> RefundRequest:
    values: dict[str, Any] = {
        "refund_id": 31,
        "payment_id": charge.payment_id,
        "order_id": charge.order_id,
        "amount": charge.amount,
        "charge_reference": charge_reference,
        "transaction_id": charge.transaction_id,
    }
    return RefundRequest(**(values | fields))


# The launcher


# localstripe's own routes, imported here to be looked at, not served.
@pytest.mark.filterwarnings("ignore:Bare functions are deprecated:DeprecationWarning")
async def test_the_launcher_keeps_localstripe_from_writing_its_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the launcher relies on still holds: localstripe writes its store to disk on
    every change through Store.dump_to_disk alone, both from the store and from its
    server's middleware, so that replacing that one method keeps everything in memory.
    A localstripe that writes some other way fails here, not as a slow or shared test."""
    from localstripe import resources, server

    opened: list[tuple[str, str]] = []

    def spy_open(path: str, mode: str = "r", *args: Any, **kwargs: Any) -> io.BytesIO:
        opened.append((path, mode))
        return io.BytesIO()

    # localstripe's module-level `open` (shadowing the builtin for its code alone).
    monkeypatch.setattr(resources, "open", spy_open, raising=False)
    store = resources.Store()
    store["probe:1"] = "written"
    assert opened, "localstripe no longer writes its store from Store: see keep_store_in_memory"
    assert all(mode.startswith("w") for _, mode in opened)

    opened.clear()
    monkeypatch.setattr(resources.Store, "dump_to_disk", resources.Store.dump_to_disk)
    launcher.keep_store_in_memory()
    store["probe:2"] = "kept"
    del store["probe:1"]

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    await server.save_store_middleware(make_mocked_request("POST", "/v1/x"), handler)
    assert opened == [], "localstripe writes its store some other way than Store.dump_to_disk"
    assert isinstance(server.app, web.Application)


def test_the_launcher_refuses_a_localstripe_without_dump_to_disk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from localstripe import resources

    monkeypatch.delattr(resources.Store, "dump_to_disk")
    with pytest.raises(RuntimeError, match="dump_to_disk is gone"):
        launcher.keep_store_in_memory()


# Charges


async def test_an_approved_charge_is_one_payment_intent_created_and_confirmed(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    request = charge_request("pm_card_visa")
    decision = await gateway.charge(request)

    assert decision.outcome is ChargeOutcome.APPROVED
    assert decision.reference is not None and decision.reference.startswith("pi_")
    assert decision.failure_code is None and decision.next_action is None
    [intent] = await localstripe.payment_intents(request.transaction_id)
    assert intent["id"] == decision.reference
    assert intent["status"] == "succeeded"
    # JPY has no minor unit: 89,800 yen is 89800.
    assert (intent["amount"], intent["currency"]) == (89800, "jpy")
    assert intent["metadata"] == {
        "shop": "tokyo-1",
        "campaign": "winter",
        "order_id": "1234",
        "payment_id": "7",
        "transaction_id": str(request.transaction_id),
    }
    [create] = await localstripe.creates(request.transaction_id)
    assert create["idempotency_key"] == str(request.transaction_id)
    sent = parse_qs(create["body"])
    assert sent["confirm"] == ["true"]
    assert sent["payment_method_types[0]"] == ["card"]
    assert sent["payment_method"] == ["pm_card_visa"]


async def test_the_attempts_own_metadata_cannot_pass_for_the_keys_that_tie_it(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    request = charge_request("pm_card_visa", metadata={"order_id": "999", "note": "x"})
    await gateway.charge(request)
    [intent] = await localstripe.payment_intents(request.transaction_id)
    assert intent["metadata"]["order_id"] == "1234"
    assert intent["metadata"]["note"] == "x"


async def test_a_card_declined_at_charge_is_declined_with_stripes_message(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    request = charge_request(await localstripe.payment_method(DECLINED_AT_CHARGE))
    decision = await gateway.charge(request)

    assert decision.outcome is ChargeOutcome.DECLINED
    assert decision.failure_code == "card_declined"
    assert decision.failure_message == "Your card was declined."
    [intent] = await localstripe.payment_intents(request.transaction_id)
    assert intent["status"] == "requires_payment_method"


async def test_an_unknown_payment_method_is_an_invalid_request_not_a_card_decline(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    """The bad token is the client's: the attempt is over (DECLINED, so never COMPLETED,
    and retryable with another payment method) under a code of its own."""
    request = charge_request("pm_unknown")
    decision = await gateway.charge(request)

    assert decision.outcome is ChargeOutcome.DECLINED
    assert decision.failure_code == "invalid_request"
    assert decision.failure_message
    assert await localstripe.payment_intents(request.transaction_id) == []


async def test_3d_secure_passed_approves_the_charge(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    request = charge_request(await localstripe.payment_method(THREE_D_SECURE))
    decision = await gateway.charge(request)

    assert decision.outcome is ChargeOutcome.REQUIRES_ACTION
    [intent] = await localstripe.payment_intents(request.transaction_id)
    assert decision.reference == intent["id"]
    assert decision.next_action == NextAction("authenticate", intent["client_secret"])

    assert await localstripe.authenticate(intent["id"], intent["client_secret"], True) == 200
    status = await gateway.charge_status(answered(request, decision))
    assert status == ChargeDecision(ChargeOutcome.APPROVED, intent["id"])


async def test_3d_secure_failed_declines_the_charge_as_authentication_required(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    request = charge_request(await localstripe.payment_method(THREE_D_SECURE))
    decision = await gateway.charge(request)
    assert decision.next_action is not None and decision.reference is not None

    await localstripe.authenticate(decision.reference, decision.next_action.client_secret, False)
    status = await gateway.charge_status(answered(request, decision))
    assert status.outcome is ChargeOutcome.DECLINED
    assert status.failure_code == "authentication_required"
    assert status.failure_message == "The provided PaymentMethod has failed authentication."


async def test_3d_secure_passed_then_declined_by_the_card(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    request = charge_request(await localstripe.payment_method(THREE_D_SECURE_THEN_DECLINED))
    decision = await gateway.charge(request)
    assert decision.next_action is not None and decision.reference is not None

    # The buyer's browser gets the decline (402) once authenticated; the service asks.
    assert (
        await localstripe.authenticate(decision.reference, decision.next_action.client_secret, True)
        == 402
    )
    status = await gateway.charge_status(answered(request, decision))
    assert (status.outcome, status.failure_code) == (ChargeOutcome.DECLINED, "card_declined")


async def test_cancel_of_a_charge_whose_buyer_never_authenticated(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    request = charge_request(await localstripe.payment_method(THREE_D_SECURE))
    decision = await gateway.charge(request)

    cancelled = await gateway.cancel(answered(request, decision))
    assert cancelled.outcome is ChargeOutcome.DECLINED
    assert cancelled.failure_code == "authentication_required"
    assert cancelled.reference == decision.reference
    [intent] = await localstripe.payment_intents(request.transaction_id)
    assert intent["status"] == "canceled"


async def test_cancel_after_the_buyer_authenticated_answers_approved(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    """The buyer won the race: the money moved, and the cancel must say so."""
    request = charge_request(await localstripe.payment_method(THREE_D_SECURE))
    decision = await gateway.charge(request)
    assert decision.next_action is not None and decision.reference is not None
    await localstripe.authenticate(decision.reference, decision.next_action.client_secret, True)

    cancelled = await gateway.cancel(answered(request, decision))
    assert cancelled == ChargeDecision(ChargeOutcome.APPROVED, decision.reference)


# Asking again: the reconciler


async def test_status_by_reference_reads_the_payment_intent_and_makes_nothing(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    request = charge_request("pm_card_visa")
    decision = await gateway.charge(request)

    status = await gateway.charge_status(answered(request, decision))
    assert status == decision
    assert len(await localstripe.creates(request.transaction_id)) == 1


async def test_status_without_reference_sends_the_same_create_under_the_same_key(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    """A charge whose answer never came is asked about by sending the very same create
    again: Stripe then answers with the PaymentIntent that create made (or makes it now),
    because the Idempotency-Key is the same and so are the parameters (Stripe refuses a
    key sent again with other parameters), as the launcher's front door answers for
    localstripe: the same key, the same bytes, even with the payment's metadata read back
    in another order, hence one PaymentIntent."""
    request = charge_request("pm_card_visa")
    charged = await gateway.charge(request)
    read_back = charge_request(
        "pm_card_visa",
        transaction_id=request.transaction_id,
        metadata=dict(reversed(request.metadata.items())),
    )

    status = await gateway.charge_status(read_back)
    assert status == charged and status.outcome is ChargeOutcome.APPROVED
    first, again = await localstripe.creates(request.transaction_id)
    assert first["idempotency_key"] == again["idempotency_key"] == str(request.transaction_id)
    assert first["body"] == again["body"]
    [intent] = await localstripe.payment_intents(request.transaction_id)
    assert intent["id"] == charged.reference


async def test_the_front_door_keeps_stripes_promise_on_idempotency_keys(
    localstripe: LocalStripe,
) -> None:
    """What the test above relies on: a POST sent again under its key is answered as the
    first was, without running again; other parameters under it are Stripe's 400."""
    key = str(uuid.uuid4())
    form = {"amount": "1000", "currency": "jpy", "payment_method": "pm_card_visa"}
    replays_before = (await localstripe.stats())["replayed"]
    answers = [
        await localstripe.post("/v1/payment_intents", form, idempotency_key=key) for _ in range(2)
    ]
    other = await localstripe.post(
        "/v1/payment_intents", form | {"amount": "2000"}, idempotency_key=key
    )
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert answers[1].headers["Idempotent-Replayed"] == "true"
    assert (await localstripe.stats())["replayed"] == replays_before + 1
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"


# Refunds


async def test_a_refund_is_one_stripe_refund_of_the_payment_intent(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    charge = charge_request("pm_card_visa")
    charged = await gateway.charge(charge)
    request = refund_request(charge, charged.reference)

    decision = await gateway.refund(request)
    assert decision.outcome is RefundOutcome.SUCCEEDED
    assert decision.reference is not None and decision.reference.startswith("re_")
    made = await localstripe.get(f"/v1/refunds/{decision.reference}")
    assert (made["payment_intent"], made["amount"]) == (charged.reference, 89800)
    assert made["metadata"]["refund_id"] == "31"
    assert made["metadata"]["transaction_id"] == str(charge.transaction_id)
    [create] = await localstripe.creates(charge.transaction_id, "/v1/refunds")
    assert create["idempotency_key"] == f"refund-{charge.transaction_id}-31"

    status = await gateway.refund_status(
        refund_request(charge, charged.reference, reference=decision.reference)
    )
    assert status == decision


async def test_refund_status_without_reference_finds_the_refund_made(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    """The refund's answer never came, and Stripe forgets an Idempotency-Key after a day:
    the refund is found among the PaymentIntent's, not asked for again."""
    charge = charge_request("pm_card_visa")
    charged = await gateway.charge(charge)
    request = refund_request(charge, charged.reference)
    decision = await gateway.refund(request)

    status = await gateway.refund_status(request)
    assert status == decision
    refunds = await localstripe.get("/v1/refunds", payment_intent=charged.reference)
    assert len(refunds["data"]) == 1


async def test_refund_status_of_a_refund_never_made_makes_it_once(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    charge = charge_request("pm_card_visa")
    charged = await gateway.charge(charge)
    request = refund_request(charge, charged.reference)

    status = await gateway.refund_status(request)
    assert status.outcome is RefundOutcome.SUCCEEDED
    assert await gateway.refund_status(request) == status
    refunds = await localstripe.get("/v1/refunds", payment_intent=charged.reference)
    assert [made["id"] for made in refunds["data"]] == [status.reference]


async def test_a_refund_of_a_failed_payment_fails_with_stripes_message(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    charge = charge_request(await localstripe.payment_method(DECLINED_AT_CHARGE))
    await gateway.charge(charge)
    # localstripe's decline names no PaymentIntent (Stripe's does): found by its metadata.
    [intent] = await localstripe.payment_intents(charge.transaction_id)

    decision = await gateway.refund(refund_request(charge, intent["id"]))
    assert decision.outcome is RefundOutcome.FAILED
    assert decision.failure_code == "refund_failed"
    assert decision.failure_message == "Cannot refund a failed payment."


# Loopback servers for what localstripe never answers


def succeeded_intent(reference: str = "pi_scripted") -> dict[str, Any]:
    return {"id": reference, "object": "payment_intent", "status": "succeeded"}


@contextlib.asynccontextmanager
async def adapter_of(url: str, **options: Any) -> AsyncIterator[StripeGateway]:
    settings: dict[str, Any] = {
        "api_key": "sk_test_scripted",
        "api_base": url,
        "timeout_seconds": 5.0,
        "max_requests_per_second": 100,
        "webhook_secrets": (WEBHOOK_SECRET,),
    }
    adapter = StripeGateway(**(settings | options))
    try:
        yield adapter
    finally:
        await adapter.aclose()


@pytest.mark.parametrize(("code", "decline_code", "expected"), STRIPE_DECLINES)
async def test_each_stripe_decline_is_mapped_to_the_services_failure_code(
    code: str, decline_code: str | None, expected: str
) -> None:
    """Stripe's card errors (402, `card_error`) as its API reference words them:
    localstripe declines with card_declined alone."""
    message = f"Stripe says {decline_code or code}."
    async with ScriptedStripe() as server, adapter_of(server.url) as adapter:
        server.answer = (402, card_error(code, decline_code, message), {})
        decision = await adapter.charge(charge_request("pm_card_visa"))
    assert decision == ChargeDecision(ChargeOutcome.DECLINED, "pi_declined", expected, message)


async def test_a_charge_without_answer_in_the_time_limit_is_unavailable() -> None:
    """A server that accepts the connection and never answers."""
    connections: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        async with adapter_of(f"http://127.0.0.1:{port}", timeout_seconds=0.5) as adapter:
            # A generous bound of the test's own: the adapter's limit is what ends the call.
            with pytest.raises(GatewayUnavailable, match="time limit"):
                await asyncio.wait_for(adapter.charge(charge_request("pm_card_visa")), 30)
        assert connections, "the charge never reached the server"
    finally:
        for writer in connections:
            writer.close()
        silent.close()
        await silent.wait_closed()


async def test_a_charge_to_a_closed_port_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with adapter_of(f"http://127.0.0.1:{port}") as adapter:
        with pytest.raises(GatewayUnavailable, match="unreachable"):
            await adapter.charge(charge_request("pm_card_visa"))


async def test_a_5xx_is_unavailable_and_left_to_the_reconciler() -> None:
    """Stripe replays a 500 to the same Idempotency-Key: sending it again at once would
    only hear the same 500."""
    async with ScriptedStripe() as server, adapter_of(server.url) as adapter:
        server.answer = (500, {"error": {"type": "api_error", "message": "Oops"}}, {})
        with pytest.raises(GatewayUnavailable, match="HTTP 500"):
            await adapter.charge(charge_request("pm_card_visa"))
        assert len(server.received) == 1


async def test_a_refused_api_key_is_unavailable_never_a_decline() -> None:
    async with ScriptedStripe() as server, adapter_of(server.url) as adapter:
        server.answer = (
            401,
            {
                "error": {
                    "type": "invalid_request_error",
                    "message": "Invalid API Key provided: sk_test_****ted",
                }
            },
            {},
        )
        with pytest.raises(GatewayUnavailable, match="refusing the API key"):
            await adapter.charge(charge_request("pm_card_visa"))


async def test_a_429_is_sent_again_and_the_charge_approved() -> None:
    rate_limited = (429, {"error": {"type": "invalid_request_error", "code": "rate_limit"}}, {})
    async with ScriptedStripe() as server, adapter_of(server.url) as adapter:
        server.answers = [rate_limited, rate_limited]
        server.answer = (200, succeeded_intent(), {})
        decision = await adapter.charge(charge_request("pm_card_visa"))
    assert decision == ChargeDecision(ChargeOutcome.APPROVED, "pi_scripted")
    assert len(server.received) == 3
    keys = {headers["Idempotency-Key"] for _, _, headers in server.received}
    assert len(keys) == 1


async def test_a_429_retry_after_is_honoured_within_the_time_limit() -> None:
    """Retry-After longer than the time limit left: no wait that would be cut off, no
    second send, GatewayUnavailable at once."""
    async with ScriptedStripe() as server, adapter_of(server.url, timeout_seconds=2) as adapter:
        server.answer = (429, {"error": {"code": "rate_limit"}}, {"Retry-After": "60"})
        with pytest.raises(GatewayUnavailable, match="still rate limited"):
            await asyncio.wait_for(adapter.charge(charge_request("pm_card_visa")), 30)
        assert len(server.received) == 1


async def test_a_429_that_stripe_says_not_to_retry_is_not_sent_again() -> None:
    async with ScriptedStripe() as server, adapter_of(server.url) as adapter:
        server.answer = (429, {"error": {"code": "rate_limit"}}, {"Stripe-Should-Retry": "false"})
        with pytest.raises(GatewayUnavailable, match="rate limited"):
            await adapter.charge(charge_request("pm_card_visa"))
        assert len(server.received) == 1


async def test_a_conflict_stripe_says_to_retry_is_sent_again() -> None:
    """409 while Stripe still works on the first send of the same Idempotency-Key."""
    conflict = (409, {"error": {"type": "idempotency_error"}}, {"Stripe-Should-Retry": "true"})
    async with ScriptedStripe() as server, adapter_of(server.url) as adapter:
        server.answers = [conflict]
        server.answer = (200, succeeded_intent(), {})
        decision = await adapter.charge(charge_request("pm_card_visa"))
    assert decision.outcome is ChargeOutcome.APPROVED


async def test_a_429_until_the_time_limit_is_unavailable() -> None:
    async with ScriptedStripe() as server, adapter_of(server.url, timeout_seconds=1) as adapter:
        server.answer = (429, {"error": {"code": "rate_limit"}}, {})
        with pytest.raises(GatewayUnavailable):
            await asyncio.wait_for(adapter.charge(charge_request("pm_card_visa")), 30)
        assert len(server.received) > 1


async def test_a_call_whose_turn_comes_after_its_time_limit_fails_at_once() -> None:
    """One request a second, half a second each: the second call's turn would come after
    its deadline, so it is not sent at all."""
    async with (
        ScriptedStripe() as server,
        adapter_of(server.url, timeout_seconds=0.5, max_requests_per_second=1) as adapter,
    ):
        server.answer = (200, succeeded_intent(), {})
        first, second = await asyncio.gather(
            adapter.charge(charge_request("pm_card_visa")),
            adapter.charge(charge_request("pm_card_visa")),
            return_exceptions=True,
        )
    assert isinstance(first, ChargeDecision) and first.outcome is ChargeOutcome.APPROVED
    assert isinstance(second, GatewayUnavailable)
    assert "rate limit" in str(second)
    assert len(server.received) == 1


async def test_a_held_up_event_loop_releases_no_burst_of_requests() -> None:
    """The requests due while the event loop was held up (a long computation, a pause)
    go one by one afterwards: a burst would meet Stripe's own limit."""
    pacer = RequestPacer(20)
    loop = asyncio.get_running_loop()
    released: list[float] = []

    async def one() -> None:
        await pacer.wait(loop.time() + 60)
        released.append(loop.time())

    waiting = [asyncio.create_task(one()) for _ in range(12)]
    await asyncio.sleep(0.12)
    time.sleep(0.4)  # noqa: ASYNC251  (holds the event loop up: eight turns come due)
    await asyncio.gather(*waiting)
    gaps = [later - earlier for earlier, later in itertools.pairwise(released)]
    assert min(gaps) >= 1 / 20


async def test_secrets_appear_in_no_message_repr_or_log(caplog: pytest.LogCaptureFixture) -> None:
    api_key = "sk_test_" + secrets.token_hex(16)
    webhook_secret = "whsec_" + secrets.token_hex(16)
    caplog.set_level(logging.DEBUG)
    # Its own logger too: a service started earlier in this process quiets it (log_config).
    caplog.set_level(logging.DEBUG, logger="stripe")
    seen: list[str] = []
    async with (
        ScriptedStripe() as server,
        adapter_of(
            server.url, api_key=api_key, webhook_secrets=(webhook_secret,), timeout_seconds=0.5
        ) as adapter,
    ):
        seen.append(repr(adapter))
        for status in (401, 500, 429):
            server.answer = (status, {"error": {"message": f"Invalid key {api_key[-4:]}"}}, {})
            with pytest.raises(GatewayUnavailable) as unavailable:
                await adapter.charge(charge_request("pm_card_visa"))
            seen += [str(unavailable.value), repr(unavailable.value)]
            seen += traceback.format_exception(unavailable.value)
        with pytest.raises(SignatureError) as refused:
            adapter.parse_event(b"{}", {"Stripe-Signature": "t=1,v1=00"})
        seen += traceback.format_exception(refused.value)
    seen.append(caplog.text)
    assert caplog.records, "nothing was logged: the check would prove nothing"
    for text in seen:
        assert api_key not in text
        assert webhook_secret not in text


# The client-side rate limit against a server that enforces Stripe's


async def run_charges(adapter: StripeGateway, count: int, in_flight: int) -> list[Any]:
    slots = asyncio.Semaphore(in_flight)

    async def one() -> Any:
        async with slots:
            try:
                return await adapter.charge(charge_request("pm_card_visa"))
            except GatewayUnavailable as exc:
                return exc

    return await asyncio.gather(*(one() for _ in range(count)))


@pytest.mark.slow
async def test_a_batch_under_the_client_side_limit_meets_no_429() -> None:
    """200 charges, 64 in flight, at most 20 requests a second from the adapter, to a
    server that turns away whatever passes 25 in any second."""
    with LocalStripe(rate_limit=25) as limited:
        async with adapter_of(
            limited.url, api_key=limited.api_key, timeout_seconds=30, max_requests_per_second=20
        ) as adapter:
            outcomes = await run_charges(adapter, 200, 64)
        stats = await limited.stats()
    assert [o for o in outcomes if not isinstance(o, ChargeDecision)] == []
    assert {o.outcome for o in outcomes} == {ChargeOutcome.APPROVED}
    assert stats["answered_429"] == 0
    assert stats["requests"] == 200


@pytest.mark.slow
async def test_a_batch_over_the_servers_limit_is_sent_again_and_approved() -> None:
    """The adapter allowed 50 a second, the server 25: the 429s it answers are sent again,
    within each charge's time limit, until every charge is approved."""
    with LocalStripe(rate_limit=25) as limited:
        async with adapter_of(
            limited.url, api_key=limited.api_key, timeout_seconds=60, max_requests_per_second=50
        ) as adapter:
            outcomes = await run_charges(adapter, 200, 64)
        stats = await limited.stats()
    assert [o for o in outcomes if not isinstance(o, ChargeDecision)] == []
    assert {o.outcome for o in outcomes} == {ChargeOutcome.APPROVED}
    assert stats["answered_429"] > 0
    assert stats["requests"] == 200 + stats["answered_429"]


# Events


async def test_the_events_localstripe_sends_are_verified_and_read() -> None:
    """localstripe signs and sends payment_intent.succeeded and .payment_failed to a
    registered URL as Stripe does (a second after the charge)."""
    with LocalStripe() as server:
        async with (
            ScriptedStripe() as receiver,
            adapter_of(server.url, api_key=server.api_key) as adapter,
        ):
            await server.register_webhook(
                "test",
                f"{receiver.url}/stripe",
                WEBHOOK_SECRET,
                ["payment_intent.succeeded", "payment_intent.payment_failed"],
            )
            approved = charge_request("pm_card_visa")
            declined = charge_request(await server.payment_method(DECLINED_AT_CHARGE))
            charged = await adapter.charge(approved)
            await adapter.charge(declined)

            async def both_received() -> bool:
                return len(receiver.bodies) >= 2

            await wait_until(both_received, 15.0, "2 events received")
            events = [
                adapter.parse_event(body, headers)
                for body, (_, _, headers) in zip(receiver.bodies, receiver.received, strict=True)
            ]

    by_attempt = {event.transaction_id: event for event in events if event is not None}
    assert by_attempt[approved.transaction_id] == GatewayEvent(
        event_id=by_attempt[approved.transaction_id].event_id,
        kind="charge",
        charge_reference=charged.reference,
        transaction_id=approved.transaction_id,
        charge=ChargeDecision(ChargeOutcome.APPROVED, charged.reference),
    )
    failed = by_attempt[declined.transaction_id]
    assert failed.kind == "charge" and failed.charge is not None
    assert (failed.charge.outcome, failed.charge.failure_code) == (
        ChargeOutcome.DECLINED,
        "card_declined",
    )
    assert failed.event_id.startswith("evt_")
    assert failed.event_id != by_attempt[approved.transaction_id].event_id


async def test_events_of_the_payment_intents_canceled_and_the_refunds(
    localstripe: LocalStripe, gateway: StripeGateway
) -> None:
    """localstripe sends no payment_intent.canceled, charge.refunded or refund.updated:
    these events are Stripe's envelope around the objects localstripe made."""
    waiting = charge_request(await localstripe.payment_method(THREE_D_SECURE))
    cancelled = await gateway.cancel(answered(waiting, await gateway.charge(waiting)))
    [intent] = await localstripe.payment_intents(waiting.transaction_id)
    body = event_body("payment_intent.canceled", intent)
    event = gateway.parse_event(body, {"Stripe-Signature": signature(body, WEBHOOK_SECRET)})
    assert event is not None and event.charge == cancelled
    assert (event.kind, event.transaction_id) == ("charge", waiting.transaction_id)

    charge = charge_request("pm_card_visa")
    charged = await gateway.charge(charge)
    refunded = await gateway.refund(refund_request(charge, charged.reference))
    made = await localstripe.get(f"/v1/refunds/{refunded.reference}")
    body = event_body("refund.updated", made)
    event = gateway.parse_event(body, {"stripe-signature": signature(body, WEBHOOK_SECRET)})
    assert event == GatewayEvent(
        event_id=json.loads(body)["id"],
        kind="refund",
        charge_reference=charged.reference,
        transaction_id=charge.transaction_id,
        refund_reference=refunded.reference,
        refund_id=refund_request(charge, charged.reference).refund_id,
        refund=refunded,
    )

    [paid] = await localstripe.payment_intents(charge.transaction_id)
    charge_object = await localstripe.get(f"/v1/charges/{paid['latest_charge']['id']}")
    body = event_body("charge.refunded", charge_object)
    event = gateway.parse_event(body, {"Stripe-Signature": signature(body, WEBHOOK_SECRET)})
    assert event is not None and event.kind == "refund"
    assert (event.refund_reference, event.refund) == (refunded.reference, refunded)


async def test_events_of_other_types_are_ignored(gateway: StripeGateway) -> None:
    body = event_body("customer.created", {"id": "cus_1", "object": "customer"})
    assert gateway.parse_event(body, {"Stripe-Signature": signature(body, WEBHOOK_SECRET)}) is None


async def test_a_signed_body_that_is_no_event_is_malformed(gateway: StripeGateway) -> None:
    for body in (b"not json", b'{"id": "evt_1"}', event_body("refund.updated", {"id": 3})):
        with pytest.raises(MalformedEvent):
            gateway.parse_event(body, {"Stripe-Signature": signature(body, WEBHOOK_SECRET)})


async def test_signatures_of_either_secret_verify_while_rotating() -> None:
    old, new = "whsec_old-secret", "whsec_new-secret"
    body = event_body("customer.created", {"id": "cus_1"})
    now = int(time.time())
    async with adapter_of("http://127.0.0.1:9", webhook_secrets=(old, new)) as adapter:
        for secret in (old, new):
            adapter.parse_event(body, {"Stripe-Signature": signature(body, secret)})
        # Stripe signs with both while it rolls the endpoint's secret: several v1 entries.
        unknown = signature(body, "whsec_other", now).split(",")[1]
        both = f"{signature(body, old, now)},{unknown}"
        adapter.parse_event(body, {"Stripe-Signature": both})
    async with adapter_of("http://127.0.0.1:9", webhook_secrets=("whsec_other",)) as adapter:
        with pytest.raises(SignatureError, match="no valid"):
            adapter.parse_event(body, {"Stripe-Signature": signature(body, new)})


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1=00", "timestamp"),
        ("t=abc,v1=00", "timestamp"),
        ("t= 1700000000,v1=00", "timestamp"),
        ("t=1,t=2,v1=00", "timestamp"),
        ("t={now}", "no v1"),
        ("t={now},v0=00", "no v1"),
        ("t={stale},v1={stale_signature}", "too far"),
        ("t={future},v1={future_signature}", "too far"),
        ("t={now},v1={tampered}", "no valid"),
        ("t={now},v1=", "no valid"),
    ],
)
async def test_a_bad_signature_is_refused(
    gateway: StripeGateway, header: str | None, reason: str
) -> None:
    body = event_body("payment_intent.succeeded", succeeded_intent())
    now = int(time.time())
    stale, future = now - 301, now + 301
    values = {
        "now": now,
        "stale": stale,
        "future": future,
        "stale_signature": signature(body, WEBHOOK_SECRET, stale).split("v1=")[1],
        "future_signature": signature(body, WEBHOOK_SECRET, future).split("v1=")[1],
        "tampered": signature(body + b" ", WEBHOOK_SECRET, now).split("v1=")[1],
    }
    headers = {} if header is None else {"Stripe-Signature": header.format(**values)}
    with pytest.raises(SignatureError, match=reason):
        gateway.parse_event(body, headers)


async def test_without_a_webhook_secret_every_event_is_refused() -> None:
    body = event_body("payment_intent.succeeded", succeeded_intent())
    async with adapter_of("http://127.0.0.1:9", webhook_secrets=()) as adapter:
        with pytest.raises(SignatureError, match="no Stripe webhook secret"):
            adapter.parse_event(body, {"Stripe-Signature": signature(body, WEBHOOK_SECRET)})
