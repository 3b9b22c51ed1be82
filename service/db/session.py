"""The write side's statements on one connection, typed, as the domain's shapes.

Every write of the service reaches `sql/` through a `Session`: the payments (charging,
settling, retrying, refunding, reconciling), the gateway's callbacks, the idempotency
keys, and the operators' outbox commands (the console's replay jobs among them). Nothing
outside service/db/ names a query; the read side has its own sessions
(service/db/reader.py), the relay its store (service/db/relay_store.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeAlias
from uuid import UUID

import msgspec

from service.db.queries import Queries, Row
from service.db.rows import row_as
from service.domain.model import BuyerAction, Payment, Refund, RefundStatus
from service.domain.rules import RETRY_SOURCES, UNDECIDED, PaymentStatus, sources_of

if TYPE_CHECKING:
    from service.db.queries import Executor

REFUND_SOURCES = sources_of(PaymentStatus.REFUNDED)
# The statuses whose order webhook a settlement queues.
SETTLED = (PaymentStatus.COMPLETED, PaymentStatus.FAILED)
# The NOTIFY payload of an operator's retry, replay or redelivery: relays deliver at once,
# and probe an Order Service they hold for down without waiting for the pause to end.
OPERATOR_WAKEUP = "operator"


class KeyClaim(NamedTuple):
    """A request's hold on its Idempotency-Key (service/api/idempotency.py): which key
    (the caller's own), the token of this claim, and the payments earlier tries of the
    same request created. The statements that create payments under a claim record them
    on its key themselves, so that a retry answers with them, never "duplicate order"."""

    caller: str
    endpoint: str
    key: str
    token: UUID
    earlier_payment_ids: frozenset[int] = frozenset()


KeyFields: TypeAlias = tuple[str | None, str | None, str | None, UUID | None]
# How insert_processing_many's items name a claim's fields.
KEY_ITEM_FIELDS = ("key_caller", "key_endpoint", "key_name", "key_token")


def _key_fields(claim: KeyClaim | None) -> KeyFields:
    """A statement's key parameters: the claim's, or NULLs, which match no key."""
    if claim is None:
        return (None, None, None, None)
    return (claim.caller, claim.endpoint, claim.key, claim.token)


class PaymentColumns(Protocol):
    """A payment as its client asked for it, checked: a Struct whose fields are columns of
    payments (order_id, amount, currency, ...), stored by name (sql/payment_batches.sql)."""

    @property
    def order_id(self) -> int: ...


class NewPayment(NamedTuple):
    """A payment to create PROCESSING, under the request's key claim, if any."""

    payment: PaymentColumns
    claim: KeyClaim | None = None


class Charge(NamedTuple):
    """A payment's latest charge attempt as the gateway is asked about it: the payment,
    and the buyer's payment method the attempt was made with (kept with the payment so
    that the same request can be sent again, never part of the resource)."""

    payment: Payment
    payment_method_token: str | None


class Settlement(NamedTuple):
    """What the gateway said of one payment's charge attempt `transaction_id`, asked for
    by the API call `request_id`: COMPLETED, or FAILED (with why), the order webhook's
    events; PENDING, waiting for the buyer (with what the buyer's page does next); or
    PROCESSING still, with the gateway's reference of it."""

    payment_id: int
    transaction_id: UUID
    status: PaymentStatus
    request_id: str | None
    failure_code: str | None = None
    failure_message: str | None = None
    gateway_reference: str | None = None
    next_action: BuyerAction | None = None


class RefundInFlight(NamedTuple):
    """A refund as the gateway is asked about it: the refund, and its payment's order,
    latest charge attempt and the gateway's reference of that charge."""

    refund: Refund
    order_id: int
    transaction_id: UUID
    charge_reference: str | None
    # The gateway's reference of the refund itself, once it answered.
    reference: str | None


class RefundSettlement(NamedTuple):
    """What the gateway said of a refund: COMPLETED, FAILED (with why), or PENDING still
    (with the gateway's reference of it)."""

    refund_id: int
    status: RefundStatus
    gateway_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


class StoredKey(msgspec.Struct, frozen=True):
    """An Idempotency-Key someone else holds or has answered: the request it was for (by
    its body's hash) and, once answered, the answer to replay."""

    request_hash: bytes
    response_status: int | None
    response_content_type: str | None
    response_body: bytes | None


class Session:
    """`queued_webhooks` tells the unit of work that an outbox row was written."""

    def __init__(self, connection: Executor, queries: Queries) -> None:
        self.connection = connection
        self._sql = queries
        self.queued_webhooks = False

    # Charging: the two steps of every charge (service/commands/charging.py).

    async def insert_processing_many(self, payments: Sequence[NewPayment]) -> list[Charge]:
        """The new PROCESSING payments; an order that already has one gets none."""
        items = [
            dict(zip(KEY_ITEM_FIELDS, _key_fields(new.claim), strict=True), payment=new.payment)
            for new in payments
        ]
        # Bound as jsonb: the connection writes it (service/db/codecs.py).
        rows = self._sql.insert_processing_many(self.connection, items=items)
        return [_charge(row) async for row in rows]

    async def start_retry(
        self, payment_id: int, payment_method_token: str | None, claim: KeyClaim | None = None
    ) -> Charge | None:
        """The payment back in PROCESSING under a new transaction_id, its new charge attempt
        started with `payment_method_token` (None: the previous attempt's) and recorded on
        the claim's key; None when it was not FAILED (or another retry took it first)."""
        caller, endpoint, key, token = _key_fields(claim)
        row = await self._sql.start_retry(
            self.connection,
            payment_id=payment_id,
            from_statuses=RETRY_SOURCES,
            payment_method_token=payment_method_token,
            key_caller=caller,
            key_endpoint=endpoint,
            key_name=key,
            key_token=token,
        )
        return None if row is None else _charge(row)

    async def settle_many(self, settlements: Sequence[Settlement]) -> list[Payment]:
        """Each payment as the gateway's word leaves it (COMPLETED and FAILED with their
        order webhook queued); one that could no longer move there (someone else settled
        it, and that stands) or whose charge attempt is no longer its latest (a retry
        superseded it) is left out."""
        if not settlements:
            return []
        rows = self._sql.settle_payments(
            self.connection,
            payment_ids=[s.payment_id for s in settlements],
            transaction_ids=[s.transaction_id for s in settlements],
            statuses=[s.status.value for s in settlements],
            gateway_references=[s.gateway_reference for s in settlements],
            next_actions=[
                None if s.next_action is None else msgspec.json.encode(s.next_action).decode()
                for s in settlements
            ],
            failure_codes=[s.failure_code for s in settlements],
            failure_messages=[s.failure_message for s in settlements],
            request_ids=[s.request_id for s in settlements],
            from_statuses=UNDECIDED,
        )
        settled = [row_as(row, Payment) async for row in rows]
        if any(payment.status in SETTLED for payment in settled):
            self.queued_webhooks = True
        return settled

    async def find_payments(self, payment_ids: Sequence[int]) -> list[Payment]:
        rows = self._sql.find_payments(self.connection, payment_ids=payment_ids)
        return [row_as(row, Payment) async for row in rows]

    async def find_payment(self, payment_id: int) -> Payment | None:
        found = await self.find_payments([payment_id])
        return found[0] if found else None

    # Refunds: the two steps of every refund (service/commands/refunding.py).

    async def start_refund(
        self, payment_id: int, amount: Decimal | None, reason: str, request_id: str | None
    ) -> RefundInFlight | None:
        """The refund committed PENDING; None when the payment cannot be refunded now (not
        COMPLETED, another amount, or a refund of it is PENDING)."""
        row = await self._sql.start_refund(
            self.connection,
            payment_id=payment_id,
            from_statuses=REFUND_SOURCES,
            amount=amount,
            reason=reason,
            request_id=request_id,
        )
        return None if row is None else _refund_in_flight(row)

    async def settle_refunds(self, settlements: Sequence[RefundSettlement]) -> list[Refund]:
        """Each refund as the gateway's word leaves it (COMPLETED with its payment REFUNDED
        and the `refunded` order webhook queued); one settled before is left out."""
        rows = self._sql.settle_refunds(
            self.connection,
            refund_ids=[s.refund_id for s in settlements],
            statuses=[s.status.value for s in settlements],
            gateway_references=[s.gateway_reference for s in settlements],
            failure_codes=[s.failure_code for s in settlements],
            failure_messages=[s.failure_message for s in settlements],
            from_statuses=REFUND_SOURCES,
        )
        settled = [row_as(row, Refund) async for row in rows]
        if any(refund.status is RefundStatus.COMPLETED for refund in settled):
            self.queued_webhooks = True
        return settled

    async def claim_pending_refunds(
        self, older_than_seconds: float, lease_seconds: float, max_rows: int
    ) -> list[RefundInFlight]:
        """The refunds this reconciler asks about now; no other asks until the lease ends."""
        rows = self._sql.claim_pending_refunds(
            self.connection,
            older_than_seconds=older_than_seconds,
            lease_seconds=lease_seconds,
            max_rows=max_rows,
        )
        return [_refund_in_flight(row) async for row in rows]

    async def lock_refund_of_event(
        self, transaction_id: UUID, refund_id: int | None
    ) -> RefundInFlight | None:
        """The refund a gateway's event is about (its own id, or the payment's PENDING one),
        locked until the transaction ends."""
        row = await self._sql.lock_refund_of_event(
            self.connection, transaction_id=transaction_id, refund_id=refund_id
        )
        return None if row is None else _refund_in_flight(row)

    async def find_refunds(self, refund_ids: Sequence[int]) -> list[Refund]:
        rows = self._sql.find_refunds(self.connection, refund_ids=refund_ids)
        return [row_as(row, Refund) async for row in rows]

    async def live_refund_of_payment(self, payment_id: int) -> int | None:
        """The id of the payment's refund still PENDING, if any."""
        return await self._sql.live_refund_of_payment(self.connection, payment_id=payment_id)

    # The gateway's callbacks, and the reconciler.

    async def lock_payment_by_transaction(
        self, transaction_id: UUID
    ) -> tuple[Payment, PaymentStatus] | None:
        """The payment one of whose charge attempts is `transaction_id`, locked, and how that
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

    async def claim_undecided_payments(
        self, status: PaymentStatus, older_than_seconds: float, lease_seconds: float, max_rows: int
    ) -> list[Charge]:
        """The payments in `status` (PROCESSING, PENDING) this reconciler asks about now; no
        other asks until the lease ends."""
        rows = self._sql.claim_undecided_payments(
            self.connection,
            status=status.value,
            older_than_seconds=older_than_seconds,
            lease_seconds=lease_seconds,
            max_rows=max_rows,
        )
        return [_charge(row) async for row in rows]

    async def count_waiting_for_buyer(self) -> int:
        return await self._sql.count_waiting_for_buyer(self.connection)

    async def flag_for_manual_review(self, payment_id: int, older_than_seconds: float) -> bool:
        """Whether the payment was flagged now (False: too young, flagged before, settled)."""
        flagged = await self._sql.flag_for_manual_review(
            self.connection, payment_id=payment_id, older_than_seconds=older_than_seconds
        )
        return flagged is not None

    async def count_manual_review(self) -> int:
        return await self._sql.count_manual_review(self.connection)

    # Idempotency keys (service/api/idempotency.py).

    async def claim_key(
        self,
        caller: str,
        endpoint: str,
        key: str,
        request_hash: bytes,
        *,
        token: UUID,
        ttl_seconds: float,
        lock_seconds: float,
    ) -> KeyClaim | None:
        """The key held by this request (a new key, an expired one, or one an earlier try
        of the same request let go), with the payments earlier tries created; None when
        another request holds it or it has its answer."""
        row = await self._sql.claim_idempotency_key(
            self.connection,
            caller=caller,
            endpoint=endpoint,
            key=key,
            request_hash=request_hash,
            token=token,
            ttl_seconds=ttl_seconds,
            lock_seconds=lock_seconds,
        )
        if row is None:
            return None
        return KeyClaim(caller, endpoint, key, token, frozenset(row["payment_ids"]))

    async def find_key(self, caller: str, endpoint: str, key: str) -> StoredKey | None:
        row = await self._sql.find_idempotency_key(
            self.connection, caller=caller, endpoint=endpoint, key=key
        )
        return None if row is None else row_as(row, StoredKey)

    async def store_answer(
        self, claim: KeyClaim, status: int, content_type: str, body: bytes
    ) -> bool:
        """Keep the request's answer to replay for the key's lifetime; False when the
        claim no longer holds the key (its lock expired and another request took it)."""
        done = await self._sql.complete_idempotency_key(
            self.connection,
            caller=claim.caller,
            endpoint=claim.endpoint,
            key=claim.key,
            token=claim.token,
            response_status=status,
            response_content_type=content_type,
            response_body=body,
        )
        return done == "UPDATE 1"

    async def release_key(self, claim: KeyClaim) -> None:
        """Let go of a key whose request failed without a definite answer (5xx)."""
        await self._sql.release_idempotency_key(
            self.connection,
            caller=claim.caller,
            endpoint=claim.endpoint,
            key=claim.key,
            token=claim.token,
        )

    # The operators' outbox commands (service/commands/outbox_operations.py).

    async def lock_order_of_event(self, event_id: UUID) -> bool:
        """Lock the payment of the event's order, as every statement that queues an event
        of it does; False when no event has that id."""
        return await self._sql.lock_order_of_event(self.connection, event_id=event_id) is not None

    async def replay_dead_events(
        self,
        *,
        event_id: UUID | None = None,
        order_id: int | None = None,
        dead_since: datetime | None = None,
        all_dead: bool = False,
    ) -> list[Row]:
        rows = self._sql.replay_dead_events(
            self.connection,
            event_id=event_id,
            order_id=order_id,
            dead_since=dead_since,
            all_dead=all_dead,
        )
        return [row async for row in rows]

    async def retry_waiting_events(
        self,
        *,
        event_id: UUID | None = None,
        order_id: int | None = None,
        created_since: datetime | None = None,
        all_waiting: bool = False,
    ) -> list[Row]:
        rows = self._sql.retry_waiting_events(
            self.connection,
            event_id=event_id,
            order_id=order_id,
            created_since=created_since,
            all_waiting=all_waiting,
        )
        return [row async for row in rows]

    async def reopen_event(self, event_id: UUID) -> list[Row]:
        return [row async for row in self._sql.reopen_event(self.connection, event_id=event_id)]

    async def record_replay_job(
        self, started_by: str, dead_since: datetime, event_ids: Sequence[UUID]
    ) -> int:
        """Keep a console job that replayed these dead events; its id."""
        return await self._sql.record_replay_job(
            self.connection, started_by=started_by, dead_since=dead_since, event_ids=event_ids
        )

    async def wake_relays(self, sender: str) -> None:
        """NOTIFY the relays (sent when the transaction commits); `sender` lets a relay
        tell an operator's wake-up (OPERATOR_WAKEUP) from its own process's."""
        await self._sql.wake_relays(self.connection, sender=sender)


def _charge(row: Row) -> Charge:
    return Charge(row_as(row, Payment), row["payment_method_token"])


def _refund_in_flight(row: Row) -> RefundInFlight:
    return RefundInFlight(
        row_as(row, Refund),
        row["order_id"],
        row["transaction_id"],
        row["charge_reference"],
        row["gateway_reference"],
    )
