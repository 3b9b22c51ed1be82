"""The console's actions: refund, retry a FAILED payment, redeliver an event, replay the
dead events since a time. Each runs the write side's command, as the API does (no second
write path), and answers with the same outcome the API would, as a page: the same
statuses, the same error texts (service/api/problems.py).

Every form carries an Idempotency-Key made when its page was rendered, claimed and
answered through the same statements as the API's keys (service/api/idempotency.py), in
the name of the session's token: a form sent twice shows the first outcome again and acts
once. An outcome the service could not decide (5xx) lets the key go, so the form can be
sent again.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import FormMultiDict
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath
from litestar.response import Template

from service.api.console.access import CSRF_FIELD
from service.api.console.rendering import page, visitor
from service.api.dependencies import WriteSide
from service.api.idempotency import claim_key, is_valid_key, keep_answer
from service.api.path_ids import parse_timestamp
from service.api.payments import refund_status_code
from service.api.problems import domain_problem
from service.commands import RedeliverEvent, RefundPayment, RetryPayment, StartReplayJob
from service.commands.charging import retry_payment
from service.commands.outbox_operations import redeliver_event, start_replay_job
from service.commands.refunding import refund_payment
from service.db.session import KeyClaim
from service.domain.errors import DomainError
from service.domain.model import Payment, Refund

KEY_FIELD = "idempotency_key"


class Outcome(msgspec.Struct, frozen=True):
    """What an action ended with, as its page shows it (and as its key stores it)."""

    status: int
    title: str
    detail: str
    # What else the answer named (failure_code, failure_message, the refund's fields...).
    facts: dict[str, Any] = {}
    # Where to look next.
    payment_id: int | None = None
    job_id: int | None = None
    # Shown again for a form sent twice, not acted on again.
    replayed: bool = False


def _problem_outcome(error: DomainError, payment_id: int | None) -> Outcome:
    problem = domain_problem(error)
    facts = _plain(
        {k: v for k, v in problem.items() if k not in ("type", "title", "status", "detail")}
    )
    return Outcome(problem["status"], problem["title"], problem["detail"], facts, payment_id)


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    # Kept as JSON with the key: text for what JSON has no type of (times, yen, UUIDs).
    return {
        name: value if value is None or isinstance(value, str | int) else str(value)
        for name, value in fields.items()
    }


def _form_text(form: FormMultiDict, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


Act = Callable[[KeyClaim], Awaitable[Outcome]]


async def once(
    request: Request[Any, Any, Any],
    write: WriteSide,
    form: FormMultiDict,
    act: Act,
    payment_id: int | None = None,
) -> Template:
    """Run `act` under the form's Idempotency-Key, or show the outcome stored for it. A
    domain error of `act` is its outcome, as the API answers it (about `payment_id`)."""
    key = _form_text(form, KEY_FIELD).strip()
    if not is_valid_key(key):
        raise ValidationException(
            "the form has no valid idempotency key: reload the page and send it again"
        )
    # What was asked: the form's fields but its CSRF token, which is the session's.
    asked = sorted((k, v) for k, v in form.multi_items() if k not in (CSRF_FIELD, KEY_FIELD))
    digest = hashlib.sha256(msgspec.json.encode(asked)).digest()
    caller = visitor(request).fingerprint
    endpoint = f"POST {request.url.path.rstrip('/')}"
    claim, stored = await claim_key(
        write.uow, write.settings.idempotency, caller, endpoint, key, digest
    )
    if claim is None:
        if stored is None or stored.response_body is None:
            outcome = Outcome(409, "Already being sent", "this form is being sent; wait and reload")
        elif stored.request_hash != digest:
            outcome = Outcome(422, "Form reused", "this form was sent before with other values")
        else:
            outcome = msgspec.structs.replace(
                msgspec.json.decode(stored.response_body, type=Outcome), replayed=True
            )
        return page(request, "outcome.html", outcome.status, outcome=outcome)
    try:
        outcome = await act(claim)
    except DomainError as exc:
        outcome = _problem_outcome(exc, payment_id)
    except BaseException:
        # An error the service did not expect: a 500, so the key is let go.
        await keep_answer(write.uow, claim, 500, "application/json", b"")
        raise
    answer = msgspec.json.encode(outcome)
    await keep_answer(write.uow, claim, outcome.status, "application/json", answer)
    return page(request, "outcome.html", outcome.status, outcome=outcome)


def _refunded(refund: Refund) -> Outcome:
    facts = _plain(msgspec.structs.asdict(refund))
    detail = f"refund {refund.id} of payment {refund.payment_id}: {refund.status}"
    title = f"Refund {refund.status.lower()}"
    return Outcome(refund_status_code(refund), title, detail, facts, refund.payment_id)


def _charged(payment: Payment) -> Outcome:
    detail = f"payment {payment.id} of order {payment.order_id} is {payment.status}"
    facts = {"transaction_id": str(payment.transaction_id)}
    return Outcome(201, "Payment retried", detail, facts, payment.id)


class ConsoleActions(Controller):
    path = "/console"
    include_in_schema = False

    @post("/payments/{payment_id:int}/refund")
    async def refund(
        self,
        request: Request[Any, Any, Any],
        write: NamedDependency[WriteSide],
        payment_id: FromPath[int],
    ) -> Template:
        """Refund the payment in full, with the confirmed reason."""
        form = await request.form()

        async def act(claim: KeyClaim) -> Outcome:
            command = RefundPayment(payment_id=payment_id, reason=_form_text(form, "reason"))
            return _refunded(await refund_payment(command, write.uow, write.gateway))

        return await once(request, write, form, act, payment_id)

    @post("/payments/{payment_id:int}/retry")
    async def retry(
        self,
        request: Request[Any, Any, Any],
        write: NamedDependency[WriteSide],
        payment_id: FromPath[int],
    ) -> Template:
        """Charge a FAILED payment again (its next charge attempt)."""
        form = await request.form()

        async def act(claim: KeyClaim) -> Outcome:
            command = RetryPayment(payment_id=payment_id)
            return _charged(await retry_payment(command, write.uow, write.gateway, claim))

        return await once(request, write, form, act, payment_id)

    @post("/events/{event_id:uuid}/redeliver")
    async def redeliver(
        self,
        request: Request[Any, Any, Any],
        write: NamedDependency[WriteSide],
        event_id: FromPath[uuid.UUID],
    ) -> Template:
        """Send the event again now, keeping its order's order."""
        form = await request.form()
        payment = _form_text(form, "payment_id")
        payment_id = int(payment) if payment.isascii() and payment.isdigit() else None

        async def act(claim: KeyClaim) -> Outcome:
            redelivery = await redeliver_event(RedeliverEvent(event_id), write.uow)
            if redelivery is None:
                detail = f"event {event_id} does not exist (or is past retention)"
                return Outcome(404, "Not found", detail, payment_id=payment_id)
            sending = [str(event) for event in redelivery.sending]
            detail = f"event {event_id} of order {redelivery.order_id} is sent again"
            return Outcome(202, "Redelivery", detail, {"sending": sending}, payment_id)

        return await once(request, write, form, act)

    @post("/events/replay")
    async def replay(
        self, request: Request[Any, Any, Any], write: NamedDependency[WriteSide]
    ) -> Template:
        """Replay every event dead since the form's time, as a job whose page follows it."""
        form = await request.form()
        since = parse_timestamp(_form_text(form, "dead_since").strip() or None, "dead since")
        if since is None:
            raise ValidationException("dead since: give a time (RFC 3339)")
        started_by = visitor(request).fingerprint

        async def act(claim: KeyClaim) -> Outcome:
            job = await start_replay_job(StartReplayJob(since, started_by), write.uow)
            detail = f"{len(job.event_ids)} dead events replayed (job {job.id})"
            return Outcome(202, "Replay started", detail, job_id=job.id)

        return await once(request, write, form, act)
