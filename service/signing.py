"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

Outgoing order webhooks are signed with it; incoming gateway callbacks must be.
The signed content is "{webhook-id}.{webhook-timestamp}.{raw body}", the
signature HMAC-SHA256 keyed by the base64-decoded part of a `whsec_` secret.
Several secrets may be configured at once, so that either side can rotate without
downtime: a message is signed with each (space-separated `v1,` signatures, as the
scheme allows) and verified if any signature matches any key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from functools import cache

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


def split_secrets(value: str | tuple[str, ...]) -> tuple[str, ...]:
    """The secrets of a secret setting: a list as it is, a string split on whitespace (a
    `whsec_` + base64 secret contains none), so that one variable can carry several."""
    return tuple(value.split()) if isinstance(value, str) else value


@cache
def secret_keys(secrets: tuple[str, ...]) -> tuple[bytes, ...]:
    """The HMAC keys of configured secrets, decoded once per configuration (not per message)."""
    return tuple(secret_key(secret) for secret in secrets)


def sign(key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The `webhook-signature` header value for one message (`timestamp` as its header text)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_all(keys: Sequence[bytes], msg_id: str, timestamp: int | str, body: bytes) -> str:
    """One `v1,` signature per key, space-separated: a receiver that knows any of the
    keys verifies the message (the old and the new secret during a rotation)."""
    return " ".join(sign(key, msg_id, timestamp, body) for key in keys)


def verify(
    keys: bytes | Sequence[bytes],
    msg_id: str | None,
    timestamp: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> None:
    """Raise SignatureError unless one of the header's `v1,` signatures matches one of
    `keys` (a single key, or several during a rotation)."""
    if not msg_id or not timestamp or not signature_header:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not UNIX_SECONDS.fullmatch(timestamp):
        raise SignatureError("webhook-timestamp is not unix seconds")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_seconds:
        raise SignatureError("webhook-timestamp is too far from now")
    # Signed as the exact text received, never a re-rendering of the number parsed from it.
    expected = [
        sign(key, msg_id, timestamp, body).encode()
        for key in ((keys,) if isinstance(keys, bytes) else keys)
    ]
    # The header may carry several space-separated signatures (secret rotation). Every
    # pair is compared, each in constant time, so timing tells nothing about which key
    # (or how much of a signature) matched.
    matched = False
    for candidate in signature_header.split():
        for signature in expected:
            matched |= hmac.compare_digest(candidate.encode(), signature)
    if not matched:
        raise SignatureError("no matching signature")
