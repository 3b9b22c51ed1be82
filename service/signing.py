"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

Outgoing order webhooks are signed with it; incoming gateway callbacks must be.
The signed content is "{webhook-id}.{webhook-timestamp}.{raw body}", the
signature HMAC-SHA256 keyed by the base64-decoded part of a `whsec_` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time

SECRET_PREFIX = "whsec_"
# Unix seconds as the scheme sends them: ASCII digits only. int() would also take
# " +1700000000 ", "1_700_000_000" or other scripts' digits, none of which is signed as sent.
UNIX_SECONDS = re.compile(r"[0-9]{1,19}")


class SignatureError(Exception):
    """Missing, malformed, stale or wrong signature. The message names which."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (the prefix is optional)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError("webhook secret must be 'whsec_' followed by base64") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The `webhook-signature` header value for one message (`timestamp` as its header text)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    key: bytes,
    msg_id: str | None,
    timestamp: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> None:
    """Raise SignatureError unless one of the header's `v1,` signatures matches."""
    if not msg_id or not timestamp or not signature_header:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not UNIX_SECONDS.fullmatch(timestamp):
        raise SignatureError("webhook-timestamp is not unix seconds")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_seconds:
        raise SignatureError("webhook-timestamp is too far from now")
    # Signed as the exact text received, never a re-rendering of the number parsed from it.
    expected = sign(key, msg_id, timestamp, body).encode()
    # The header may carry several space-separated signatures (secret rotation).
    for candidate in signature_header.split():
        if hmac.compare_digest(candidate.encode(), expected):
            return
    raise SignatureError("no matching signature")
