"""Standard Webhooks headers for gateway callbacks signed as the gateway would sign them."""

from __future__ import annotations

import time
import uuid

from service.signing import secret_key, sign
from tests.support.settings import GATEWAY_SECRET

GATEWAY_KEY = secret_key(GATEWAY_SECRET)


def signed_headers(
    body: bytes,
    *,
    webhook_id: str | None = None,
    timestamp: int | None = None,
    key: bytes = GATEWAY_KEY,
) -> dict[str, str]:
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, webhook_id, timestamp, body),
    }
