"""Stripe as the payment gateway: a charge is one PaymentIntent, created and confirmed in
one request; a refund is one Refund of it; Stripe's signed events tell what became of
either later.

Requests go through Stripe's own library (StripeClient over its httpx client), which
encodes them, authenticates, pins the API version and classifies errors. Its answers are
read with `raw_request_async` into this module's Structs, the same Structs that read the
objects inside Stripe's events: one function maps a PaymentIntent to a decision, whether
it came as an answer or as an event.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, Literal, TypeVar
from urllib.parse import quote
from uuid import UUID

import msgspec
import stripe

from service.backoff import Backoff, parse_retry_after
from service.gateway.contract import (
    ChargeDecision,
    ChargeOutcome,
    ChargeRequest,
    GatewayEvent,
    GatewayUnavailable,
    MalformedEvent,
    NextAction,
    RefundDecision,
    RefundOutcome,
    RefundRequest,
)
from service.gateway.limits import call_deadline
from service.signing import UNIX_SECONDS, SignatureError

STRIPE_API_BASE = "https://api.stripe.com"

# Stripe's decline codes and error codes, in the service's failure codes
# (service/domain/failures.py). A decline's `decline_code` says more than its `code`
# (which is then just "card_declined"), so it is looked up first; a word of neither
# list is the generic decline.
FAILURE_CODES: dict[str, str] = {
    "card_declined": "card_declined",
    "insufficient_funds": "insufficient_funds",
    "expired_card": "expired_card",
    "incorrect_cvc": "incorrect_cvc",
    "invalid_cvc": "incorrect_cvc",
    "lost_card": "lost_or_stolen_card",
    "stolen_card": "lost_or_stolen_card",
    "pickup_card": "lost_or_stolen_card",
    # The issuer could not decide now: trying again may succeed.
    "processing_error": "processing_error",
    "issuer_not_available": "processing_error",
    "try_again_later": "processing_error",
    "reenter_transaction": "processing_error",
    # The buyer did not pass the issuer's authentication (3-D Secure).
    "authentication_required": "authentication_required",
    "payment_intent_authentication_failure": "authentication_required",
}
GENERIC_DECLINE = "card_declined"
# Stripe refused the charge request itself (an unknown or unusable payment method, most
# often): not a decision of the card's issuer, so not a decline code of the card's.
INVALID_REQUEST = "invalid_request"

# A refund's `failure_reason`, in the service's failure codes; others are REFUND_FAILED.
REFUND_FAILURE_CODES: dict[str, str] = {
    "lost_or_stolen_card": "lost_or_stolen_card",
    "expired_or_canceled_card": "expired_card",
    "insufficient_funds": "insufficient_funds",
    "declined": "card_declined",
}
REFUND_FAILED = "refund_failed"

# Waits between sends of a request Stripe asked to be sent again (429) and that named no
# wait of its own (Retry-After): the service's one retry policy (service/backoff.py),
# doubling from 0.1 s up to 2 s, jittered so that calls turned away together do not come
# back together.
RETRY_BACKOFF = Backoff(first=0.1, cap=2.0)

T = TypeVar("T")


class _Error(msgspec.Struct):
    """Stripe's error object: a refused request's, or a PaymentIntent's last_payment_error."""

    type: str | None = None
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    # On a decline of a confirmation: the PaymentIntent it left behind.
    payment_intent: _PaymentIntent | None = None


class _ErrorBody(msgspec.Struct):
    error: _Error = msgspec.field(default_factory=_Error)


class _PaymentIntent(msgspec.Struct):
    id: str
    status: str
    client_secret: str | None = None
    metadata: dict[str, str] = {}
    last_payment_error: _Error | None = None
    cancellation_reason: str | None = None


class _Refund(msgspec.Struct):
    id: str
    status: str
    payment_intent: str | None = None
    failure_reason: str | None = None
    metadata: dict[str, str] = {}


class _Refunds(msgspec.Struct):
    data: list[_Refund] = []


class _Charge(msgspec.Struct):
    id: str
    payment_intent: str | None = None
    # The whole amount was refunded.
    refunded: bool = False
    metadata: dict[str, str] = {}
    # Only in the API versions before 2022-11-15 (and localstripe's).
    refunds: _Refunds | None = None


class _EventData(msgspec.Struct):
    object: msgspec.Raw


class _Event(msgspec.Struct):
    id: str
    type: str
    data: _EventData


class _Refused(Exception):
    """Stripe answered with a 4xx about the request itself (a decline, an invalid request):
    an answer whose meaning depends on what was asked."""

    def __init__(self, status: int, error: _Error) -> None:
        words = " ".join(word for word in (error.type, error.code) if word)
        super().__init__(f"HTTP {status} {words}".rstrip())
        self.status = status
        self.error = error


# How much later one request may reach the gateway than the next ones, sent evenly spaced:
# an event loop busy with a batch, or the network, delays a send after its turn. Spaced at
# exactly the limit, one such request puts `per_second + 1` arrivals in a second and meets
# a 429; spaced over a second and this, none does up to this delay.
ARRIVAL_JITTER_SECONDS = 0.05


class RequestPacer:
    """At most `per_second` requests a second over every call that shares it, one at a
    time and evenly spaced: a token bucket of one token, so that no burst reaches the
    gateway either. `per_second` requests are spread over a second and
    ARRIVAL_JITTER_SECONDS, so that they arrive at most `per_second` a second too.

    Each request waits its turn in line, then for that spacing after the one before it
    was let go, as measured when it was: an event loop held up for a while lets the
    requests due meanwhile go one by one afterwards, not all at once (the price: each
    sleep's lateness adds up too).
    A request whose turn would come after its call's deadline does not queue and fails at
    once, instead of waiting to be cut off.
    """

    def __init__(self, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("max_requests_per_second must be positive")
        self._interval = (1.0 + ARRIVAL_JITTER_SECONDS) / per_second
        self._next_send = 0.0
        self._line = asyncio.Lock()
        self._waiting = 0

    async def wait(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        turn = max(loop.time(), self._next_send) + self._waiting * self._interval
        if turn >= deadline:
            raise GatewayUnavailable(
                "Stripe: the client-side rate limit has no turn left within the time limit"
            )
        self._waiting += 1
        in_line = True
        try:
            async with self._line:
                self._waiting -= 1
                in_line = False
                delay = self._next_send - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._next_send = loop.time() + self._interval
        finally:
            # Cut off (its call's time limit) before its turn came.
            if in_line:
                self._waiting -= 1


class StripeGateway:
    """The Gateway (service/gateway/contract.py) of Stripe, or of a server that speaks its
    API (`api_base`, such as localstripe).

    Every call ends within `timeout_seconds` (under the service, LimitedGateway's deadline,
    which counts the wait for a call slot), the wait for its turn under
    `max_requests_per_second` and its sends again after a 429 included: with a decision,
    or with GatewayUnavailable. The API key and the webhook secrets appear in no message,
    log line or repr of the adapter.
    """

    # A PaymentIntent is confirmed with the buyer's PaymentMethod (pm_…).
    needs_payment_method = True
    # The account's events include PaymentIntents of other systems sharing it.
    ignores_unknown_payments = True
    # Stripe keeps an Idempotency-Key 24 hours; an hour short of it, to be safe.
    resend_window_seconds: float | None = 23 * 3600.0

    def __init__(
        self,
        *,
        api_key: str,
        api_base: str = STRIPE_API_BASE,
        timeout_seconds: float = 10.0,
        max_requests_per_second: float = 25.0,
        webhook_secrets: Sequence[str] = (),
        tolerance_seconds: int = 300,
    ) -> None:
        if not api_key:
            raise ValueError("a Stripe API key is required")
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self._api_base = api_base
        self._timeout = timeout_seconds
        self._pacer = RequestPacer(max_requests_per_second)
        # Stripe keys its HMAC with the whole `whsec_…` string, not with a decoding of it.
        self._webhook_keys = tuple(secret.encode() for secret in webhook_secrets)
        self._tolerance = tolerance_seconds
        self._http = stripe.HTTPXClient(timeout=timeout_seconds)
        # Its own retries off: a 429 is sent again here, under the call's time limit and
        # the rate limit; anything else without a decision is the reconciler's to ask again.
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            http_client=self._http,
            max_network_retries=0,
        )

    def __repr__(self) -> str:
        return (
            f"StripeGateway(api_base={self._api_base!r}, timeout_seconds={self._timeout!r}, "
            f"webhook_secrets={len(self._webhook_keys)})"
        )

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]  # untyped in stripe

    # Charges

    async def charge(self, request: ChargeRequest) -> ChargeDecision:
        async with self._time_limit() as deadline:
            return await self._create_payment_intent(request, deadline)

    async def charge_status(self, request: ChargeRequest) -> ChargeDecision:
        async with self._time_limit() as deadline:
            if request.reference is None:
                # No answer ever came: the same create under the same Idempotency-Key
                # returns the PaymentIntent Stripe made then, or makes it now.
                return await self._create_payment_intent(request, deadline)
            try:
                body = await self._request(
                    "get", f"/v1/payment_intents/{quote(request.reference, safe='')}", deadline
                )
            except _Refused as refused:
                raise _unavailable("the PaymentIntent could not be read", refused) from None
            return charge_decision(_decode(body, _PaymentIntent))

    async def cancel(self, request: ChargeRequest) -> ChargeDecision:
        if request.reference is None:
            raise ValueError("only a charge the gateway answered can be cancelled")
        path = f"/v1/payment_intents/{quote(request.reference, safe='')}"
        async with self._time_limit() as deadline:
            try:
                body = await self._request("post", f"{path}/cancel", deadline)
            except _Refused as refused:
                if refused.status != 400:
                    raise _unavailable("the cancel was refused", refused) from None
                # Not cancellable any more: the buyer authenticated (or it failed) first,
                # and what it is now is the answer.
                try:
                    body = await self._request("get", path, deadline)
                except _Refused as unreadable:
                    raise _unavailable("the PaymentIntent could not be read", unreadable) from None
            return charge_decision(_decode(body, _PaymentIntent))

    async def _create_payment_intent(
        self, request: ChargeRequest, deadline: float
    ) -> ChargeDecision:
        if request.payment_method_token is None:
            raise ValueError("a Stripe charge needs the buyer's payment_method_token")
        # Ours last: a payment's own metadata may not pass for the keys that tie the
        # PaymentIntent to the attempt. Sorted, so that a create sent again (from what
        # the database gives back) has the same parameters as the first, as Stripe
        # requires of a request sent again under an Idempotency-Key.
        metadata = request.metadata | {
            "order_id": str(request.order_id),
            "payment_id": str(request.payment_id),
            "transaction_id": str(request.transaction_id),
        }
        try:
            body = await self._request(
                "post",
                "/v1/payment_intents",
                deadline,
                idempotency_key=str(request.transaction_id),
                amount=yen(request.amount),
                currency="jpy",
                payment_method=request.payment_method_token,
                confirm=True,
                # Cards only: no payment method that redirects the buyer to pay elsewhere.
                payment_method_types=["card"],
                metadata=dict(sorted(metadata.items())),
            )
        except _Refused as refused:
            return _refused_charge(refused)
        return charge_decision(_decode(body, _PaymentIntent))

    # Refunds

    async def refund(self, request: RefundRequest) -> RefundDecision:
        async with self._time_limit() as deadline:
            return await self._create_refund(request, deadline)

    async def refund_status(self, request: RefundRequest) -> RefundDecision:
        async with self._time_limit() as deadline:
            if request.reference is not None:
                try:
                    path = f"/v1/refunds/{quote(request.reference, safe='')}"
                    body = await self._request("get", path, deadline)
                except _Refused as refused:
                    raise _unavailable("the refund could not be read", refused) from None
                return refund_decision(_decode(body, _Refund))
            # No answer ever came. Stripe keeps an Idempotency-Key for 24 hours, a refund
            # for ever: look for it first, and ask for it again only if it is not there.
            made = await self._find_refund(request, deadline)
            if made is not None:
                return refund_decision(made)
            return await self._create_refund(request, deadline)

    async def _create_refund(self, request: RefundRequest, deadline: float) -> RefundDecision:
        charge_reference = _payment_intent_of(request)
        try:
            body = await self._request(
                "post",
                "/v1/refunds",
                deadline,
                # The refund's id names it; the attempt's id (a UUID) keeps it apart from
                # refund number N of another database on the same Stripe account.
                idempotency_key=f"refund-{request.transaction_id}-{request.refund_id}",
                payment_intent=charge_reference,
                amount=yen(request.amount),
                metadata=_refund_metadata(request),
            )
        except _Refused as refused:
            error = refused.error
            code = (
                failure_code(error.code, error.decline_code)
                if refused.status == 402
                else REFUND_FAILED
            )
            return RefundDecision(RefundOutcome.FAILED, None, code, error.message)
        return refund_decision(_decode(body, _Refund))

    async def _find_refund(self, request: RefundRequest, deadline: float) -> _Refund | None:
        try:
            body = await self._request(
                "get",
                "/v1/refunds",
                deadline,
                payment_intent=_payment_intent_of(request),
                limit=100,
            )
        except _Refused as refused:
            raise _unavailable("the refunds could not be listed", refused) from None
        ours = _refund_metadata(request)
        for made in _decode(body, _Refunds).data:
            if all(made.metadata.get(key) == ours[key] for key in ("refund_id", "transaction_id")):
                return made
        return None

    # Events

    def parse_event(self, body: bytes, headers: Mapping[str, str]) -> GatewayEvent | None:
        self._verify(body, _header(headers, "stripe-signature"))
        try:
            event = msgspec.json.decode(body, type=_Event)
            match event.type:
                case (
                    "payment_intent.succeeded"
                    | "payment_intent.payment_failed"
                    | "payment_intent.canceled"
                ):
                    intent = msgspec.json.decode(event.data.object, type=_PaymentIntent)
                    transaction_id = _transaction_id(intent.metadata)
                    if transaction_id is None:
                        return None  # a PaymentIntent the service did not create
                    return GatewayEvent(
                        event_id=event.id,
                        kind="charge",
                        charge_reference=intent.id,
                        transaction_id=transaction_id,
                        charge=charge_decision(intent),
                    )
                case "refund.updated":
                    made = msgspec.json.decode(event.data.object, type=_Refund)
                    transaction_id = _transaction_id(made.metadata)
                    if transaction_id is None:
                        return None  # a refund the service did not ask for
                    return GatewayEvent(
                        event_id=event.id,
                        kind="refund",
                        charge_reference=made.payment_intent,
                        transaction_id=transaction_id,
                        refund_reference=made.id,
                        refund_id=_refund_id(made.metadata),
                        refund=refund_decision(made),
                    )
                case "charge.refunded":
                    charge = msgspec.json.decode(event.data.object, type=_Charge)
                    return _refunded_charge_event(event.id, charge)
                case _:
                    return None
        except msgspec.ValidationError as exc:
            raise MalformedEvent(f"not a Stripe event: {exc}") from None
        except msgspec.DecodeError:
            raise MalformedEvent("not a Stripe event: the body is not JSON") from None

    def _verify(self, body: bytes, header: str | None) -> None:
        """Stripe's scheme: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}">`, one v1
        per secret Stripe signs with (two while it rolls a secret), any of which may
        match any of the secrets configured here (two while this side rolls one)."""
        if not self._webhook_keys:
            raise SignatureError("no Stripe webhook secret is configured")
        if not header:
            raise SignatureError("missing Stripe-Signature header")
        timestamps: list[str] = []
        signatures: list[bytes] = []
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            if name == "t":
                timestamps.append(value)
            elif name == "v1":
                signatures.append(value.encode())
        if len(timestamps) != 1 or not UNIX_SECONDS.fullmatch(timestamps[0]):
            raise SignatureError("Stripe-Signature has no single unix-seconds timestamp")
        if not signatures:
            raise SignatureError("Stripe-Signature has no v1 signature")
        timestamp = timestamps[0]
        if abs(time.time() - int(timestamp)) > self._tolerance:
            raise SignatureError("Stripe-Signature timestamp is too far from now")
        # Signed as the exact text received, never a re-rendering of the number parsed from it.
        signed = timestamp.encode() + b"." + body
        expected = [
            hmac.new(key, signed, hashlib.sha256).hexdigest().encode() for key in self._webhook_keys
        ]
        # Every pair is compared, each in constant time: timing tells nothing about which
        # secret, or how much of a signature, matched.
        matched = False
        for candidate in signatures:
            for signature in expected:
                matched |= hmac.compare_digest(candidate, signature)
        if not matched:
            raise SignatureError("no valid Stripe signature")

    # Requests

    @asynccontextmanager
    async def _time_limit(self) -> AsyncIterator[float]:
        """The call's deadline (event loop time), and GatewayUnavailable once it passes:
        LimitedGateway's, whose clock started before the wait for a call slot, or one of
        `timeout_seconds` from now when the adapter is called bare."""
        deadline = call_deadline.get()
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            async with asyncio.timeout_at(deadline):
                yield deadline
        except TimeoutError:
            raise GatewayUnavailable(
                f"Stripe: no answer within the time limit of {self._timeout:g} s"
            ) from None

    async def _request(
        self,
        method: Literal["get", "post"],
        path: str,
        deadline: float,
        *,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> str:
        """Stripe's answer to one request: sent when the pacer gives it a turn, and again
        (with a new turn) while Stripe asks for it and the time limit allows.

        Raises _Refused for a decline or an invalid request, GatewayUnavailable for no
        answer, an answer of the gateway's trouble (5xx), or a refusal of our credentials.
        """
        options: dict[str, Any] = {}
        if idempotency_key is not None:
            options["idempotency_key"] = idempotency_key
        loop = asyncio.get_running_loop()
        sends = 0
        while True:
            await self._pacer.wait(deadline)
            sends += 1
            try:
                response = await self._client.raw_request_async(method, path, **params, **options)
            except (stripe.CardError, stripe.InvalidRequestError) as exc:
                raise _Refused(exc.http_status or 400, _error_of(exc)) from None
            except stripe.StripeError as exc:
                wait = _wait_before_sending_again(exc, sends)
                if wait is None:
                    raise _unavailable_after(exc) from None
                if loop.time() + wait >= deadline:
                    raise GatewayUnavailable(
                        f"Stripe: still {_what(exc)} after {sends} sends, at the time limit"
                    ) from None
                await asyncio.sleep(wait)
                continue
            body: str = response.body
            return body


def yen(amount: Decimal) -> int:
    """An amount of whole yen as Stripe takes JPY: in yen itself (a zero-decimal currency)."""
    if amount != amount.to_integral_value() or amount <= 0:
        raise ValueError(f"not a positive whole yen amount: {amount}")
    return int(amount)


def failure_code(code: str | None, decline_code: str | None) -> str:
    """The service's failure code of a Stripe decline."""
    for word in (decline_code, code):
        if word in FAILURE_CODES:
            return FAILURE_CODES[word]
    return GENERIC_DECLINE


def charge_decision(intent: _PaymentIntent) -> ChargeDecision:
    """What a PaymentIntent's status decides about the charge attempt."""
    match intent.status:
        case "succeeded":
            return ChargeDecision(ChargeOutcome.APPROVED, intent.id)
        case "requires_action":
            action = (
                NextAction("authenticate", intent.client_secret) if intent.client_secret else None
            )
            return ChargeDecision(ChargeOutcome.REQUIRES_ACTION, intent.id, next_action=action)
        case "requires_payment_method":
            # The payment method failed (a decline, or a failed authentication) and the
            # PaymentIntent waits for another: this attempt is over.
            return _declined(intent.id, intent.last_payment_error or _Error())
        case "canceled":
            error = intent.last_payment_error
            if error is not None:
                return _declined(intent.id, error)
            if intent.cancellation_reason in (None, "abandoned"):
                # The service cancels only the attempts whose buyer never authenticated
                # (without a reason: localstripe takes none).
                return ChargeDecision(
                    ChargeOutcome.DECLINED,
                    intent.id,
                    "authentication_required",
                    "The buyer did not authenticate the payment in time.",
                )
            return ChargeDecision(
                ChargeOutcome.DECLINED,
                intent.id,
                GENERIC_DECLINE,
                f"The payment was canceled at Stripe ({intent.cancellation_reason}).",
            )
        case _:
            # "processing", and states a PaymentIntent created confirmed with automatic
            # capture does not stay in ("requires_confirmation", "requires_capture") or
            # that Stripe adds later: not a decision; asking again later tells.
            return ChargeDecision(ChargeOutcome.PROCESSING, intent.id)


def refund_decision(made: _Refund) -> RefundDecision:
    """What a Refund's status decides about the refund."""
    match made.status:
        case "succeeded":
            return RefundDecision(RefundOutcome.SUCCEEDED, made.id)
        case "failed" | "canceled":
            reason = made.failure_reason or made.status
            return RefundDecision(
                RefundOutcome.FAILED,
                made.id,
                REFUND_FAILURE_CODES.get(reason, REFUND_FAILED),
                f"Stripe could not refund the payment ({reason}).",
            )
        case _:
            # "pending", "requires_action" and states Stripe adds later: not done yet.
            return RefundDecision(RefundOutcome.PENDING, made.id)


def _declined(reference: str | None, error: _Error) -> ChargeDecision:
    return ChargeDecision(
        ChargeOutcome.DECLINED,
        reference,
        failure_code(error.code, error.decline_code),
        error.message,
    )


def _refused_charge(refused: _Refused) -> ChargeDecision:
    error = refused.error
    reference = error.payment_intent.id if error.payment_intent is not None else None
    if refused.status == 402:
        return _declined(reference, error)
    # Stripe refused the request before charging anything (it validates first). On a
    # create the one thing the buyer's side gave is the payment method: an unknown or
    # unusable one is the client's fault, and the attempt is over, with nothing taken.
    return ChargeDecision(ChargeOutcome.DECLINED, reference, INVALID_REQUEST, error.message)


def _refunded_charge_event(event_id: str, charge: _Charge) -> GatewayEvent | None:
    if charge.refunds is not None and charge.refunds.data:
        # The newest refund first, as Stripe lists them.
        made: _Refund | None = charge.refunds.data[0]
    else:
        made = None
    if made is None and not charge.refunded:
        # Part of the amount, by someone else: the service refunds whole payments only.
        return None
    transaction_id = _transaction_id(made.metadata if made else charge.metadata)
    if transaction_id is None:
        return None  # a charge or a refund the service did not make
    return GatewayEvent(
        event_id=event_id,
        kind="refund",
        charge_reference=charge.payment_intent,
        transaction_id=transaction_id,
        refund_reference=made.id if made else None,
        refund_id=_refund_id(made.metadata) if made else None,
        refund=refund_decision(made) if made else RefundDecision(RefundOutcome.SUCCEEDED),
    )


def _refund_metadata(request: RefundRequest) -> dict[str, str]:
    return {
        "order_id": str(request.order_id),
        "payment_id": str(request.payment_id),
        "refund_id": str(request.refund_id),
        "transaction_id": str(request.transaction_id),
    }


def _payment_intent_of(request: RefundRequest) -> str:
    if not request.charge_reference or not request.charge_reference.startswith("pi_"):
        raise ValueError("a Stripe refund needs the payment's PaymentIntent (pi_…)")
    return request.charge_reference


def _transaction_id(metadata: Mapping[str, str]) -> UUID | None:
    try:
        return UUID(metadata["transaction_id"])
    except (KeyError, ValueError):
        return None


def _refund_id(metadata: Mapping[str, str]) -> int | None:
    try:
        return int(metadata["refund_id"])
    except (KeyError, ValueError):
        return None


def _decode(body: str, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise GatewayUnavailable(f"Stripe: an answer that is no {kind.__name__}") from None


def _error_of(exc: stripe.StripeError) -> _Error:
    try:
        return msgspec.json.decode(exc.http_body or "", type=_ErrorBody).error
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _Error(message=exc.user_message)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header of a mapping whose keys may be of any case (a plain dict's, say)."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value if isinstance(value, str) else None


def _wait_before_sending_again(exc: stripe.StripeError, sends: int) -> float | None:
    """How long to wait before sending a request again that Stripe turned away, or None
    when sending it again would not help (or is the reconciler's to do)."""
    should_retry = _header(exc.headers or {}, "stripe-should-retry")
    if should_retry == "false":
        return None
    if exc.http_status != 429 and should_retry != "true":
        return None
    retry_after = parse_retry_after(_header(exc.headers or {}, "retry-after"))
    if retry_after is not None:
        return retry_after
    return RETRY_BACKOFF.delay(sends)


def _what(exc: stripe.StripeError) -> str:
    """A short description of a refusal, without Stripe's own message (which may quote a
    masked key) and without anything of the request."""
    if isinstance(exc, stripe.APIConnectionError):
        cause = exc.__cause__
        return f"unreachable ({type(cause).__name__ if cause else 'network error'})"
    if isinstance(exc, stripe.RateLimitError):
        return "rate limited (HTTP 429)"
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return f"refusing the API key (HTTP {exc.http_status})"
    if isinstance(exc, stripe.IdempotencyError):
        return "refusing a request sent again with other parameters under its Idempotency-Key"
    return f"answering HTTP {exc.http_status}" + (f" {exc.code}" if exc.code else "")


def _unavailable_after(exc: stripe.StripeError) -> GatewayUnavailable:
    request_id = f" (request {exc.request_id})" if exc.request_id else ""
    return GatewayUnavailable(f"Stripe: {_what(exc)}{request_id}")


def _unavailable(what: str, refused: _Refused) -> GatewayUnavailable:
    return GatewayUnavailable(f"Stripe: {what}: {refused}")
