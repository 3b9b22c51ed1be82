"""An outbox event as the contract shapes it: the order webhook's body."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

import msgspec


class WebhookBody(msgspec.Struct, frozen=True):
    """The contract's order webhook body, in Python, for the OpenAPI document and the events
    API. The SQL that queues an event writes it (`order_webhook_text()`, migrations/0023),
    and the relay sends those bytes as they are."""

    payment_status: Literal["completed", "failed", "refunded"]
    transaction_id: UUID
