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
import logging
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
from service.api.idempotency import MAX_KEY_LENGTH
from service.api.path_ids import parse_timestamp
from service.api.problems import domain_problem
from service.commands import RedeliverEvent, RefundPayment, RetryPayment, StartReplayJob
from service.commands.charging import retry_payment
from service.commands.outbox_operations import redeliver_event, start_replay_job
from service.commands.refunding import refund_payment
from service.db.errors import DATABASE_ERRORS
from service.db.session import KeyClaim
from service.domain.errors import DomainError
from service.domain.model import Payment, Refund

log = logging.getLogger(__name__)

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


def _key(form: FormMultiDict) -> str:
    key = _form_text(form, KEY_FIELD).strip()
    if not key or len(key) > MAX_KEY_LENGTH or not (key.isascii() and key.isprintable()):
        raise ValidationException(
            "the form has no valid idempotency key: reload the page and send it again"
        )
    return key


Act = Callable[[KeyClaim], Awaitable[Outcome]]


async def once(
    request: Request[Any, Any, Any], write: WriteSide, form: FormMultiDict, act: Act
) -> Template:
    """Run `act` under the form's Idempotency-Key, or show the outcome stored for it."""
    settings = write.settings
    key = _key(form)
    # What was asked: the form's fields but its CSRF token, which is the session's.
    asked = sorted((k, v) for k, v in form.multi_items() if k not in (CSRF_FIELD, KEY_FIELD))
    digest = hashlib.sha256(msgspec.json.encode(asked)).digest()
    caller = visitor(request).fingerprint
    endpoint = f"POST {request.url.path.rstrip('/')}"
    async with write.uow.connection() as session:
        claim = await session.claim_key(
            caller,
            endpoint,
            key,
            digest,
            token=uuid.uuid4(),
            ttl_seconds=settings.idempotency.ttl_hours * 3600.0,
            lock_seconds=settings.idempotency.lock_seconds,
        )
        stored = None if claim is not None else await session.find_key(caller, endpoint, key)
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
    except BaseException:
        await _let_go(write, claim)
        raise
    if outcome.status >= 500:
        await _let_go(write, claim)
    else:
        async with write.uow.connection() as session:
            await session.store_answer(
                claim, outcome.status, "application/json", msgspec.json.encode(outcome)
            )
    return page(request, "outcome.html", outcome.status, outcome=outcome)


async def _let_go(write: WriteSide, claim: KeyClaim) -> None:
    try:
        async with write.uow.connection() as session:
            await session.release_key(claim)
    except DATABASE_ERRORS as exc:  # the key expires with its lock
        log.warning("console: idempotency key %r not released: %r", claim.key, exc)


def _refunded(refund: Refund) -> Outcome:
    facts = _plain(msgspec.structs.asdict(refund))
    # A refund the gateway settles later is accepted, not done (CONTRACT.md, refunds).
    status = 202 if refund.status == "PENDING" else 201
    detail = f"refund {refund.id} of payment {refund.payment_id}: {refund.status}"
    return Outcome(status, f"Refund {refund.status.lower()}", detail, facts, refund.payment_id)


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
            try:
                return _refunded(await refund_payment(command, write.uow, write.gateway))
            except DomainError as exc:
                return _problem_outcome(exc, payment_id)

        return await once(request, write, form, act)

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
            try:
                return _charged(await retry_payment(command, write.uow, write.gateway, claim))
            except DomainError as exc:
                return _problem_outcome(exc, payment_id)

        return await once(request, write, form, act)

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
