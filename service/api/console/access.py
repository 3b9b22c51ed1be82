"""Who is at the console, and what they may do: the session cookie and its CSRF token.

With API tokens configured ([auth] tokens, read_only_tokens) the console asks for one: a
full token may act (refund, retry, redeliver, replay), a read-only token may only look.
Without tokens the console is open, as the API is. Every visitor has a session, even
before signing in and on an open console, because every form's CSRF token is tied to it.

The session is a cookie (HttpOnly, SameSite=Strict, Path=/console) holding what it is
(its kind, the fingerprint of its token, a random nonce, its expiry), signed with a key
every worker derives alike from the configured tokens: no new configuration to share,
and changing the tokens (a rotation, a revocation) ends every session. A session whose
token is no longer configured as its kind is refused as well.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from functools import cache
from typing import Any, Literal

import msgspec
from litestar import Request
from litestar.datastructures import Cookie

from service.api.auth import fingerprint
from service.settings import AuthSettings, Settings

COOKIE = "payments_console"
PATH = "/console"
# The form field every console form carries.
CSRF_FIELD = "csrf_token"

# open: no tokens configured; signed-out: tokens configured, none given yet.
Kind = Literal["open", "signed-out", "read-only", "full"]


class Visitor(msgspec.Struct, frozen=True):
    """A console session: its kind, its token's fingerprint ('' without one), the nonce
    its CSRF token is made of, and when it ends (unix seconds)."""

    kind: Kind
    fingerprint: str
    nonce: str
    expires_at: int

    @property
    def signed_in(self) -> bool:
        return self.kind != "signed-out"

    @property
    def may_act(self) -> bool:
        return self.kind in ("open", "full")

    @property
    def who(self) -> str:
        """How pages name the session's token: the start of its fingerprint."""
        return self.fingerprint[:12] if self.fingerprint else "open console"


@cache
def signing_key(auth: AuthSettings) -> bytes:
    """The key sessions are signed with, the same in every worker of every host that has
    these tokens. Without tokens it is a constant: such a session grants nothing that
    everyone does not have, and its CSRF token still needs the cookie, which other sites
    can neither read nor send (SameSite=Strict)."""
    material = msgspec.json.encode([sorted(auth.tokens), sorted(auth.read_only_tokens)])
    return hmac.new(b"payments console session", material, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, purpose: bytes, text: str) -> bytes:
    return hmac.new(key, purpose + b":" + text.encode(), hashlib.sha256).digest()


def encode(visitor: Visitor, auth: AuthSettings) -> str:
    """The cookie's value: the session, and its signature."""
    payload = _b64(msgspec.json.encode(visitor))
    return f"{payload}.{_b64(_mac(signing_key(auth), b'session', payload))}"


def decode(value: str, auth: AuthSettings, now: float) -> Visitor | None:
    """The session a cookie holds, if its signature is right, it has not ended, and its
    token is still configured as its kind; None otherwise."""
    payload, _, signature = value.partition(".")
    try:
        given = _unb64(signature)
        expected = _mac(signing_key(auth), b"session", payload)
        if not hmac.compare_digest(given, expected):
            return None
        visitor = msgspec.json.decode(_unb64(payload), type=Visitor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None
    if visitor.expires_at <= now or visitor.kind != kind_of(visitor.fingerprint, auth):
        return None
    return visitor


@cache
def _fingerprints(tokens: tuple[str, ...]) -> frozenset[str]:
    # Once per configured list, as the signing key: every console request asks kind_of.
    return frozenset(fingerprint(token.encode()) for token in tokens)


def kind_of(fingerprint_: str, auth: AuthSettings) -> Kind:
    """What a session with this token fingerprint is under the configured tokens."""
    if not auth.enabled:
        return "open"
    if fingerprint_ in _fingerprints(auth.tokens):
        return "full"
    if fingerprint_ in _fingerprints(auth.read_only_tokens):
        return "read-only"
    return "signed-out"


def new_session(settings: Settings, token: bytes | None = None) -> Visitor:
    """A fresh session (a new nonce, so a CSRF token of the one before is worth nothing),
    for `token` when one was given and is valid, else open or signed out. A token is
    judged by its fingerprint: the SHA-256 of every configured token is compared, so
    nothing is learnt from timing but which digest matched."""
    auth = settings.auth
    given = "" if token is None else fingerprint(token)
    if kind_of(given, auth) == "signed-out":
        given = ""
    expires_at = int(time.time() + settings.console.session_hours * 3600)
    return Visitor(kind_of(given, auth), given, secrets.token_urlsafe(16), expires_at)


def csrf_token(visitor: Visitor, auth: AuthSettings) -> str:
    return _b64(_mac(signing_key(auth), b"csrf", visitor.nonce))


def csrf_is_valid(visitor: Visitor, auth: AuthSettings, given: str) -> bool:
    return hmac.compare_digest(given.encode(), csrf_token(visitor, auth).encode())


def visitor_of(request: Request[Any, Any, Any], settings: Settings) -> Visitor | None:
    """The request's valid session, if it has one."""
    value = request.cookies.get(COOKIE)
    return None if value is None else decode(value, settings.auth, time.time())


def session_cookie(visitor: Visitor, settings: Settings, request: Request[Any, Any, Any]) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=encode(visitor, settings.auth),
        path=PATH,
        max_age=max(0, visitor.expires_at - int(time.time())),
        httponly=True,
        samesite="strict",
        # Behind a proxy that ends TLS the request looks like plain HTTP: set the
        # Secure attribute there (README, "Console").
        secure=request.url.scheme == "https",
    )
