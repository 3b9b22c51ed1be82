"""Service-to-service bearer tokens.

When [auth] tokens (or PAYMENTS_API_TOKENS) lists any, every payments endpoint
needs `Authorization: Bearer <one of them>`. Several may be valid at once so a
token can be rotated without downtime. The gateway callback has its own
signature and health/OpenAPI stay open, so this sits on the payments controllers only.
The OpenAPI document follows the same settings: the bearer scheme and requirement are
declared only when tokens are configured (bearer_security, per app).
"""

from __future__ import annotations

import hmac

from litestar import Controller
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import ASGIMiddleware
from litestar.openapi.spec import SecurityRequirement
from litestar.types import ASGIApp, Receive, Scope, Send

from service.settings import Settings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="payments"'}


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


class BearerAuthMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        settings: Settings = scope["litestar_app"].state.settings
        tokens = settings.auth.tokens
        if tokens:
            presented = presented_token(scope)
            if presented is None:
                raise NotAuthorizedException(detail="bearer token required", headers=CHALLENGE)
            if not token_is_valid(presented, tokens):
                raise NotAuthorizedException(detail="invalid bearer token", headers=CHALLENGE)
        await next_app(scope, receive, send)


class PaymentsAPI(Controller):
    """What every controller of the payments API shares: its tag and bearer authentication
    (its security requirement is the app's, bearer_security, given by the router)."""

    tags = ["payments"]
    # Authentication first, so an unauthenticated call can never claim an idempotency key.
    middleware = [BearerAuthMiddleware()]


def bearer_security(settings: Settings) -> list[SecurityRequirement] | None:
    """What the document says the payments API requires: a bearer token when any is
    configured, nothing otherwise (then a request without one is valid, not a 401)."""
    return [{"bearer": []}] if settings.auth.tokens else None
