"""The write side's statements on one connection, typed, as the domain's shapes."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple, TypeAlias
from uuid import UUID

import asyncpg

from service.db.queries import Queries
from service.db.rows import row_as
from service.domain.model import Payment, Refund
from service.domain.rules import RETRY_SOURCES, PaymentStatus, sources_of

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # What a pooled connection is; it has the whole asyncpg.Connection API.
    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]

REFUND_SOURCES = sources_of(PaymentStatus.REFUNDED)


class ClaimedKey(NamedTuple):
    """The Idempotency-Key claim a request holds (service.api.idempotency_store): the
    payments it creates are recorded on the key by the statement that creates them."""

    caller: str
    endpoint: str
    key: str
    token: UUID


class NewPayment(NamedTuple):
    order_id: int
    amount: Decimal
    currency: str
    claimed_key: ClaimedKey | None = None


ClaimFields: TypeAlias = tuple[str | None, str | None, str | None, UUID | None]


def _claim_fields(claimed_key: ClaimedKey | None) -> ClaimFields:
    """A statement's key parameters: the claim's, or NULLs, which match no key."""
    return (None, None, None, None) if claimed_key is None else claimed_key


class Settlement(NamedTuple):
    """COMPLETED or FAILED (with why) for one payment's attempt `transaction_id`, asked
    for by the API call `request_id`."""

    payment_id: int
    transaction_id: UUID
    status: PaymentStatus
    request_id: str | None
    failure_code: str | None = None
    failure_message: str | None = None


class Session:
    """`queued_webhooks` tells the unit of work that an outbox row was written."""

    def __init__(self, connection: Connection, queries: Queries) -> None:
        self.connection = connection
        self._sql = queries
        self.queued_webhooks = False

    async def settle(self, settlement: Settlement) -> Payment | None:
        """COMPLETED or FAILED with its order webhook queued; None when the payment
        could no longer move there (someone else settled it, and that stands) or its
        attempt is no longer the latest (a retry superseded it)."""
        settled = await self.settle_many([settlement])
        return settled[0] if settled else None

    async def start_retry(
        self, payment_id: int, claimed_key: ClaimedKey | None = None
    ) -> Payment | None:
        """The payment back in PROCESSING under a new transaction_id, its new attempt
        started (and recorded on `claimed_key`); None when it was not FAILED (or another
        retry took it first)."""
        caller, endpoint, key, token = _claim_fields(claimed_key)
        row = await self._sql.start_retry(
            self.connection,
            payment_id=payment_id,
            from_statuses=RETRY_SOURCES,
            key_caller=caller,
            key_endpoint=endpoint,
            key_name=key,
            key_token=token,
        )
        return None if row is None else row_as(row, Payment)

    async def insert_processing_many(self, payments: Sequence[NewPayment]) -> list[Payment]:
        """The new PROCESSING payments; an order that already has one gets none."""
        claims = [_claim_fields(payment.claimed_key) for payment in payments]
        rows = self._sql.insert_processing_many(
            self.connection,
            order_ids=[payment.order_id for payment in payments],
            amounts=[payment.amount for payment in payments],
            currencies=[payment.currency for payment in payments],
            key_callers=[claim[0] for claim in claims],
            key_endpoints=[claim[1] for claim in claims],
            key_names=[claim[2] for claim in claims],
            key_tokens=[claim[3] for claim in claims],
        )
        return [row_as(row, Payment) async for row in rows]

    async def settle_many(self, decisions: Sequence[Settlement]) -> list[Payment]:
        """Each payment settled with its order webhook queued, as `settle` does one by
        one; a payment someone else settled first is left out."""
        if not decisions:
            return []
        targets = {decision.status for decision in decisions}
        # Every row is checked against the sources all its batch's targets share.
        sources = set.intersection(*(set(sources_of(status)) for status in targets))
        rows = self._sql.settle_payments(
            self.connection,
            payment_ids=[decision.payment_id for decision in decisions],
            transaction_ids=[decision.transaction_id for decision in decisions],
            statuses=[decision.status.value for decision in decisions],
            failure_codes=[decision.failure_code for decision in decisions],
            failure_messages=[decision.failure_message for decision in decisions],
            request_ids=[decision.request_id for decision in decisions],
            from_statuses=sorted(sources),
        )
        settled = [row_as(row, Payment) async for row in rows]
        if settled:
            self.queued_webhooks = True
        return settled

    async def find_payments(self, payment_ids: Sequence[int]) -> list[Payment]:
        rows = self._sql.find_payments(self.connection, payment_ids=payment_ids)
        return [row_as(row, Payment) async for row in rows]

    async def refund(
        self, payment_id: int, amount: Decimal | None, reason: str, request_id: str | None
    ) -> Refund | None:
        """REFUNDED, the refund and its order webhook; None when the refund does not apply."""
        row = await self._sql.refund_payment(
            self.connection,
            payment_id=payment_id,
            from_statuses=REFUND_SOURCES,
            amount=amount,
            reason=reason,
            request_id=request_id,
        )
        if row is None:
            return None
        self.queued_webhooks = True
        return row_as(row, Refund)

    async def find_payment(self, payment_id: int) -> Payment | None:
        found = await self.find_payments([payment_id])
        return found[0] if found else None

    async def lock_payment_by_transaction(
        self, transaction_id: UUID
    ) -> tuple[Payment, PaymentStatus] | None:
        """The payment one of whose attempts is `transaction_id`, locked, and how that
        attempt stands (for its latest attempt, the payment's status is what counts)."""
        row = await self._sql.lock_payment_by_transaction(
            self.connection, transaction_id=transaction_id
        )
        if row is None:
            return None
        return row_as(row, Payment), PaymentStatus(row["attempt_status"])

    async def record_gateway_event(
        self, webhook_id: str, transaction_id: UUID, status: str
    ) -> bool:
        """Whether this callback id is new (False: seen before, a no-op)."""
        recorded = await self._sql.record_gateway_event(
            self.connection, webhook_id=webhook_id, transaction_id=transaction_id, status=status
        )
        return recorded is not None

    async def claim_stuck_processing(
        self, older_than_seconds: float, lease_seconds: float, max_rows: int
    ) -> list[Payment]:
        """The payments this reconciler asks about now; no other asks until the lease ends."""
        rows = self._sql.claim_stuck_processing(
            self.connection,
            older_than_seconds=older_than_seconds,
            lease_seconds=lease_seconds,
            max_rows=max_rows,
        )
        return [row_as(row, Payment) async for row in rows]

    async def flag_for_manual_review(self, payment_id: int, older_than_seconds: float) -> bool:
        """Whether the payment was flagged now (False: too young, flagged before, settled)."""
        flagged = await self._sql.flag_for_manual_review(
            self.connection, payment_id=payment_id, older_than_seconds=older_than_seconds
        )
        return flagged is not None

    async def count_manual_review(self) -> int:
        return await self._sql.count_manual_review(self.connection)
