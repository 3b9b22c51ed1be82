"""Signing in to the console with an API token, and out again."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.response import Redirect, Template

from service.api.console.access import new_session, session_cookie
from service.api.console.rendering import (
    ACTS,
    SECURITY_HEADERS,
    settings_of,
    sign_in_page,
    start_session,
)

HOME = "/console/"


def _next(wanted: object) -> str:
    # Only a page of the console: never a redirect to another site.
    if isinstance(wanted, str) and wanted.startswith(HOME) and "//" not in wanted:
        return wanted
    return HOME


class ConsoleSignIn(Controller):
    path = "/console"
    include_in_schema = False
    # Any session may send these forms (with its CSRF token): they are not actions.
    opt = {ACTS: False}

    @post("/sign-in")
    async def sign_in(self, request: Request[Any, Any, Any]) -> Redirect | Template:
        """A new session for the token given (full or read-only), or the sign-in page
        again. The session starts afresh, so nothing of the one before carries over."""
        settings = settings_of(request)
        form = await request.form()
        token = form.get("token")
        session = new_session(settings, token.strip().encode() if isinstance(token, str) else None)
        if not session.signed_in:
            start_session(request, session)
            return sign_in_page(request, 401, "that is not a valid token")
        redirect = Redirect(_next(form.get("next")), status_code=303, headers=SECURITY_HEADERS)
        redirect.set_cookie(session_cookie(session, settings, request))
        return redirect

    @post("/sign-out")
    async def sign_out(self, request: Request[Any, Any, Any]) -> Redirect:
        """End the session: the cookie is replaced by a signed-out one (a new nonce)."""
        settings = settings_of(request)
        redirect = Redirect(HOME, status_code=303, headers=SECURITY_HEADERS)
        redirect.set_cookie(session_cookie(new_session(settings), settings, request))
        return redirect
