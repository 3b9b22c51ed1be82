"""Service-to-service bearer tokens.

When [auth] tokens (or PAYMENTS_API_TOKENS) lists any, every payments endpoint
needs `Authorization: Bearer <one of them>`. Several may be valid at once so a
token can be rotated without downtime. [auth] read_only_tokens (or
PAYMENTS_API_READ_ONLY_TOKENS) may only read: GET, HEAD and OPTIONS; any other method is
403, judged by method so that every route of the payments API is covered, later ones too.
The gateway callback has its own signature and health/OpenAPI stay open, so this sits on
the payments controllers only. The OpenAPI document follows the same settings: the bearer
schemes and requirement are declared only when tokens are configured (bearer_security).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from typing import cast

from litestar import Controller
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import ASGIMiddleware
from litestar.openapi.spec import SecurityRequirement
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from service.settings import AuthSettings, Settings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="payments"'}
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The OpenAPI security scheme of read-only tokens, beside "bearer" (full tokens).
READ_ONLY_SCHEME = "readOnlyBearer"
# Where the middleware leaves the caller's fingerprint in the request's scope state.
CALLER_STATE_KEY = "payments_caller"


class ReadOnlyToken(PermissionDeniedException):
    """A read-only token on a method that is not a read (problem type read-only-token)."""


def presented_token(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" and token.strip() else None
    return None


def token_is_valid(presented: bytes, tokens: tuple[str, ...]) -> bool:
    # Compare with every token, in constant time each, so timing tells nothing
    # about which token (or how much of one) matched.
    valid = False
    for token in tokens:
        valid |= hmac.compare_digest(presented, token.encode())
    return valid


def fingerprint(token: bytes) -> str:
    """How a token is named where what its caller stores is scoped (Idempotency-Keys): its
    SHA-256, never the token itself. The console names a session's token alike, so that a
    key is the token's whether sent to the API or through the console."""
    return hashlib.sha256(token).hexdigest()


def caller_fingerprint(scope: Scope) -> str:
    """Who is calling, for scoping what callers store (Idempotency-Keys): the SHA-256 of
    their token, never the token itself; '' when authentication is off."""
    caller: str = scope.get("state", {}).get(CALLER_STATE_KEY, "")
    return caller


class BearerAuthMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        settings: Settings = scope["litestar_app"].state.settings
        auth = settings.auth
        if auth.enabled:
            presented = presented_token(scope)
            if presented is None:
                raise NotAuthorizedException(detail="bearer token required", headers=CHALLENGE)
            # Both lists are always compared in full: timing tells not which kind matched.
            full = token_is_valid(presented, auth.tokens)
            read_only = token_is_valid(presented, auth.read_only_tokens)
            if not (full or read_only):
                raise NotAuthorizedException(detail="invalid bearer token", headers=CHALLENGE)
            method = cast(HTTPScope, scope)["method"]
            if not full and method not in READ_METHODS:
                raise ReadOnlyToken(detail=f"a read-only token may only read, not {method}")
            scope["state"][CALLER_STATE_KEY] = fingerprint(presented)
        await next_app(scope, receive, send)


class PaymentsAPI(Controller):
    """What every controller of the payments API shares: its tag and bearer authentication
    (its security requirement is the app's, bearer_security, given by the router)."""

    tags = ["payments"]
    # Authentication first, so an unauthenticated call can never claim an idempotency key.
    middleware = [BearerAuthMiddleware()]


def bearer_security(settings: Settings) -> list[SecurityRequirement] | None:
    """What the document says the payments API requires: a bearer token when any is
    configured, nothing otherwise (then a request without one is valid, not a 401). With
    read-only tokens, either kind; the writes' operations keep only the full one
    (operations.PaymentsOperation)."""
    if not settings.auth.enabled:
        return None
    if settings.auth.read_only_tokens:
        return [{"bearer": []}, {READ_ONLY_SCHEME: []}]
    return [{"bearer": []}]


def is_loopback(host: str) -> bool:
    """Whether only this machine reaches a server bound to `host`: a loopback address, or a
    name (localhost) whose every address is one. A name that does not resolve counts as
    reachable: better a needless warning than a missing one."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(ipaddress.ip_address(entry[4][0]).is_loopback for entry in found)


def open_access_warning(auth: AuthSettings, host: str, port: int) -> str | None:
    """What to warn of at start-up when anyone who reaches the address may pay and refund:
    no tokens, and an address other machines can reach (None when either is not so)."""
    if auth.enabled or is_loopback(host):
        return None
    return (
        f"authentication is off ([auth] tokens and read_only_tokens are empty) and the "
        f"service listens on {host} port {port}, not a loopback address: anyone who can "
        "reach it can pay and refund. Set PAYMENTS_API_TOKENS, or listen on 127.0.0.1"
    )
