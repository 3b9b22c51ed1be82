"""ReconcileStuckPayments: settle payments left PROCESSING by asking the gateway."""

from __future__ import annotations

import asyncio
import logging

from service.commands.charging import charge_request, settlement_of
from service.commands.messages import ReconcileStuckPayments
from service.db.session import Session
from service.db.unit_of_work import UnitOfWork
from service.domain.model import Payment
from service.gateway import ChargeDecision, ChargeOutcome, PaymentGateway
from service.metrics import MANUAL_REVIEW, PAYMENTS_RECONCILED

log = logging.getLogger(__name__)
# The webhooks of what the reconciler settles carry this in place of an API call's id.
RECONCILER_REQUEST_ID = "reconciler"


async def reconcile_stuck_payments(
    command: ReconcileStuckPayments, uow: UnitOfWork, gateway: PaymentGateway
) -> list[Payment]:
    """Settle what the gateway has decided; return the payments settled now.

    The claim is a lease: no other reconciler asks about the claimed payments until it
    ends, and this one stops asking when it does (the rest wait for the next claim).
    No lock is held while the gateway is asked: settling only applies to a payment
    still PROCESSING under the charge attempt asked about, so a gateway callback
    settling it meanwhile simply wins, and an answer about an attempt a retry has
    superseded since (settled by a callback, then retried) changes nothing: the new
    attempt is its own.
    """
    loop = asyncio.get_running_loop()
    # Measured before the claim, so this side's lease ends before the database's.
    lease_ends = loop.time() + command.lease_seconds
    async with uow.connection() as session:
        claimed = await session.claim_stuck_processing(
            command.older_than_seconds, command.lease_seconds, command.max_payments
        )
    settled: list[Payment] = []
    for asked, payment in enumerate(claimed):
        if loop.time() >= lease_ends:
            log.warning("reconciler lease ended; %d payments wait for the next round", asked)
            break
        decision = await _ask(gateway, payment, lease_ends)
        if decision.outcome is ChargeOutcome.PROCESSING:
            async with uow.connection() as session:
                await _flag_if_overdue(session, payment, command.manual_review_after_seconds)
            continue
        [result] = await uow.settle([settlement_of(payment, decision, RECONCILER_REQUEST_ID)])
        if result is not None:
            log.info("reconciled payment %s as %s", payment.id, result.status)
            PAYMENTS_RECONCILED.labels(result.status.lower()).inc()
            settled.append(result)
    async with uow.connection() as session:
        MANUAL_REVIEW.set(await session.count_manual_review())
    return settled


async def _ask(gateway: PaymentGateway, payment: Payment, lease_ends: float) -> ChargeDecision:
    """The gateway's decision; PROCESSING when it gave none (error, time limit, lease over)."""
    try:
        async with asyncio.timeout_at(lease_ends):
            return await gateway.charge_status(charge_request(payment))
    except Exception as exc:
        log.warning("gateway status failed for payment %s: %r", payment.id, exc)
        return ChargeDecision.PROCESSING


async def _flag_if_overdue(session: Session, payment: Payment, after_seconds: float) -> None:
    """Flag a payment undecided for too long, once; it stays PROCESSING (never failed
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
