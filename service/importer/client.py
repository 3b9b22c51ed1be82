"""One row's calls: create the payment, retry what is retryable, say how the row ended."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from service.importer.outcomes import Outcome, Result
from service.importer.retry import NETWORK_ERRORS, RetryPolicy, describe, is_retryable
from service.importer.rows import Payment

PAYMENTS_PATH = "/api/v1/payments/"
DUPLICATE_ORDER = "/duplicate-order"
DETAIL_CHARS = 300
UNDECIDED = (Outcome.PROCESSING, "the order has {payment}, which the gateway has not decided yet")
# What the payment an order already has makes of its row, by the payment's status; {payment}
# is "a payment", with its amount when the row names another one.
EXISTING = {
    "COMPLETED": (Outcome.ALREADY_PAID, "the order already had {payment}"),
    "PROCESSING": UNDECIDED,
    "PENDING": UNDECIDED,  # stored, not sent to the gateway yet
    "REFUNDED": (
        Outcome.REFUNDED,
        "the order had {payment}, refunded since: paying it again needs a new order",
    ),
    "FAILED": (Outcome.DECLINED, "the order had {payment}, declined"),
}
UNKNOWN = (Outcome.REJECTED, "the order already has {payment}, in a status not known here")


@dataclass(frozen=True, slots=True)
class Sends:
    response: httpx.Response | None  # the final answer (None: the network failed every time)
    count: int
    error: str  # the last network error, if any
    lost_answer: bool  # an earlier send may have done the work (answer lost, or a 5xx)


class PaymentsClient:
    def __init__(self, http: httpx.AsyncClient, policy: RetryPolicy | None = None) -> None:
        self._http = http
        self._policy = policy or RetryPolicy()
        # Parsed once: httpx would parse and merge a relative URL again on every call.
        self._create_url = httpx.URL(str(http.base_url).rstrip("/") + PAYMENTS_PATH)

    async def pay(self, payment: Payment) -> Result:
        headers = {
            "content-type": "application/json",
            "idempotency-key": payment.idempotency_key(),
        }
        sent = await self._send("POST", self._create_url, content=payment.body(), headers=headers)
        response, n = sent.response, sent.count
        if response is None:
            return Result(Outcome.FAILED, detail=_gave_up(sent), sends=n)
        replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
        return await self._answered(payment, response.status_code, _json(response), replayed, sent)

    async def _answered(
        self, payment: Payment, status: int, body: dict[str, Any], replayed: bool, sent: Sends
    ) -> Result:
        """How the service's answer for the row ends it; `body` is the payment (201) or the
        problem document (else), from a single call or a batch item alike."""
        problem_type, detail = str(body.get("type", "")), str(body.get("detail", ""))
        if status == 201:
            mine = not replayed or sent.lost_answer
            if not mine and body.get("status") != "COMPLETED":
                # A replayed answer is the payment as it stood then: one the gateway had not
                # decided is asked about again, as it stands now.
                return await self._existing(payment, status, "", sent)
            return Result(
                Outcome.PAID if mine else Outcome.ALREADY_PAID,
                payment_id=_int(body.get("id")),
                payment_status=str(body.get("status", "")),
                http_status=status,
                detail="" if mine else "paid by an earlier import of this row (replayed)",
                sends=sent.count,
            )
        if status == 402:
            payment_id = _int(body.get("payment_id"))
            return Result(
                Outcome.DECLINED, payment_id, "FAILED", status, problem_type, detail, sent.count
            )
        if status == 400 and problem_type.endswith(DUPLICATE_ORDER):
            return await self._existing(payment, status, problem_type, sent)
        outcome = Outcome.FAILED if is_retryable(status) else Outcome.REJECTED
        if outcome is Outcome.FAILED:
            detail = _gave_up(sent, detail)
        return Result(outcome, None, "", status, problem_type, _cut(detail), sent.count)

    async def _existing(
        self, payment: Payment, status: int, problem_type: str, sent: Sends
    ) -> Result:
        """The order already has a payment: report what it is (EXISTING).

        After a send whose answer was lost or was a 5xx, a payment COMPLETED or still
        PROCESSING is this run's own: paid.
        """
        sends = sent.count
        found = await self._send("GET", f"{PAYMENTS_PATH}order/{payment.order_id}")
        if found.response is None or found.response.status_code != 200:
            why = _gave_up(found) if found.response is None else found.response.text
            detail = f"order already has a payment, which could not be read: {_cut(why)}"
            return Result(Outcome.FAILED, None, "", status, problem_type, detail, sends)
        existing = _json(found.response)
        payment_status = str(existing.get("status", ""))
        amount = existing.get("amount")
        outcome, template = EXISTING.get(payment_status, UNKNOWN)
        described = "a payment"
        if isinstance(amount, int | float) and amount != payment.amount:
            described += f" of {amount:g} {existing.get('currency', '')}, not {payment.amount}"
        detail = template.format(payment=described)
        if payment_status not in EXISTING:
            detail += f" ({_cut(payment_status)!r})"
        if sent.lost_answer and outcome in (Outcome.ALREADY_PAID, Outcome.PROCESSING):
            outcome, detail = Outcome.PAID, "paid by an earlier send whose answer was lost"
        payment_id = _int(existing.get("id"))
        return Result(outcome, payment_id, payment_status, status, problem_type, detail, sends)

    async def _send(self, method: str, url: httpx.URL | str, **kwargs: Any) -> Sends:
        policy = self._policy
        error, lost = "", False
        response: httpx.Response | None = None
        for sent in range(policy.retries + 1):
            if sent:
                retry_after = None if response is None else response.headers.get("retry-after")
                await asyncio.sleep(policy.delay(sent - 1, retry_after))
            try:
                response = await self._http.request(method, url, **kwargs)
            except NETWORK_ERRORS as exc:
                response, (error, reached) = None, describe(exc)
                lost = lost or reached
                continue
            if not is_retryable(response.status_code):
                break
            lost = lost or response.status_code >= 500
        return Sends(response, sent + 1, error, lost)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return {"detail": response.text}
    return body if isinstance(body, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _gave_up(sent: Sends, detail: str = "") -> str:
    last = detail or sent.error or "no answer"
    return _cut(f"gave up after {sent.count} send(s): {last}")


def _cut(text: str) -> str:
    return " ".join(text.split())[:DETAIL_CHARS]
