"""ReconcileStuckPayments: settle what the gateway has not told the service, by asking it.

Three kinds of work, each claimed as a lease so that every process's reconciler asks
about each once per lease: payments left PROCESSING (a crash between the two steps of a
charge, or an answer or event that never came), payments whose buyer never
authenticated (PENDING past [gateway] authentication_timeout_seconds: cancelled at the
gateway, FAILED authentication_required), and refunds left PENDING. A payment is never
COMPLETED or FAILED, nor a refund settled, without the gateway's word.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from service.commands.charging import charge_request, settlement_of
from service.commands.messages import ReconcileStuckPayments
from service.commands.refunding import refund_request, refund_settlement_of
from service.db.session import Charge, Session
from service.db.unit_of_work import UnitOfWork
from service.domain.model import Payment
from service.domain.rules import PaymentStatus
from service.gateway import ChargeOutcome, Gateway, RefundOutcome
from service.metrics import MANUAL_REVIEW, PAYMENTS_RECONCILED, WAITING_FOR_BUYER

log = logging.getLogger(__name__)
# The webhooks of what the reconciler settles carry this in place of an API call's id.
RECONCILER_REQUEST_ID = "reconciler"
T = TypeVar("T")


async def reconcile_stuck_payments(
    command: ReconcileStuckPayments, uow: UnitOfWork, gateway: Gateway
) -> list[Payment]:
    """One round: settle what the gateway has decided; return the payments settled now.

    No lock is held while the gateway is asked: settling only applies to a payment still
    undecided under the charge attempt asked about, so a gateway event settling it
    meanwhile simply wins, and an answer about an attempt a retry has superseded since
    changes nothing: the new attempt is its own.
    """
    loop = asyncio.get_running_loop()
    # Measured before the claims, so this side's lease ends before the database's.
    lease_ends = loop.time() + command.lease_seconds
    async with uow.connection() as session:
        stuck = await session.claim_undecided_payments(
            PaymentStatus.PROCESSING,
            command.older_than_seconds,
            command.lease_seconds,
            command.max_payments,
        )
        waiting = await session.claim_undecided_payments(
            PaymentStatus.PENDING,
            command.authentication_timeout_seconds,
            command.lease_seconds,
            command.max_payments,
        )
        refunds = await session.claim_pending_refunds(
            command.older_than_seconds, command.lease_seconds, command.max_payments
        )
    settled: list[Payment] = []
    for asked, charge in enumerate([*stuck, *waiting]):
        if loop.time() >= lease_ends:
            log.warning("reconciler lease ended; %d payments wait for the next round", asked)
            break
        payment = charge.payment
        if _cannot_ask(charge, gateway.resend_window_seconds):
            async with uow.connection() as session:
                await _flag_if_overdue(session, payment, command.manual_review_after_seconds)
            continue
        # A buyer who never authenticated: the attempt is given up at the gateway.
        if payment.status is PaymentStatus.PENDING:
            question = gateway.cancel(charge_request(charge))
        else:
            question = gateway.charge_status(charge_request(charge))
        decision = await _ask(question, lease_ends, payment.id)
        if decision is None or decision.outcome is ChargeOutcome.PROCESSING:
            async with uow.connection() as session:
                if decision is not None and decision.reference not in (
                    None,
                    payment.gateway_reference,
                ):
                    # Undecided, but now known by the gateway's reference: the next
                    # question reads the charge instead of sending it again.
                    settlement = settlement_of(payment, decision, RECONCILER_REQUEST_ID)
                    await session.settle_many([settlement])
                await _flag_if_overdue(session, payment, command.manual_review_after_seconds)
            continue
        [result] = await uow.settle([settlement_of(payment, decision, RECONCILER_REQUEST_ID)])
        if result is not None and result.status != payment.status:
            log.info("reconciled payment %s as %s", payment.id, result.status)
            PAYMENTS_RECONCILED.labels(result.status.lower()).inc()
            settled.append(result)
    for refund in refunds:
        if loop.time() >= lease_ends:
            break
        answer = await _ask(
            gateway.refund_status(refund_request(refund)), lease_ends, refund.refund.id
        )
        if answer is None or answer.outcome is RefundOutcome.PENDING:
            continue
        async with uow.connection() as session:
            await session.settle_refunds([refund_settlement_of(refund.refund, answer)])
        log.info("reconciled refund %s as %s", refund.refund.id, answer.outcome)
    async with uow.connection() as session:
        MANUAL_REVIEW.set(await session.count_manual_review())
        WAITING_FOR_BUYER.set(await session.count_waiting_for_buyer())
    return settled


def _cannot_ask(charge: Charge, resend_window_seconds: float | None) -> bool:
    """A charge that never got an answer, older than the gateway keeps its key
    (Gateway.resend_window_seconds): asking by sending it again could charge twice, so
    it is left to manual review instead."""
    payment = charge.payment
    if payment.gateway_reference is not None or payment.status is not PaymentStatus.PROCESSING:
        return False
    if resend_window_seconds is None:
        return False
    age = datetime.now(UTC) - payment.updated_at
    return age.total_seconds() > resend_window_seconds


async def _ask(question: Coroutine[Any, Any, T], lease_ends: float, about: int) -> T | None:
    """The gateway's answer; None when it gave none (error, time limit, lease over)."""
    try:
        async with asyncio.timeout_at(lease_ends):
            return await question
    except Exception as exc:
        log.warning("gateway question about %s failed: %r", about, exc)
        return None


async def _flag_if_overdue(session: Session, payment: Payment, after_seconds: float) -> None:
    """Flag a payment undecided for too long, once; it stays as it is (never failed
    without the gateway's word) and keeps being asked about."""
    if await session.flag_for_manual_review(payment.id, after_seconds):
        fields = {"payment_id": payment.id, "order_id": payment.order_id}
        log.warning(
            "payment %s of order %s is still undecided by the gateway after %s s: flagged for "
            "manual review (ops.payments_for_manual_review)",
            payment.id,
            payment.order_id,
            after_seconds,
            extra=fields,
        )
