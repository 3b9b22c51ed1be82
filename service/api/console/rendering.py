"""How console pages are made: Jinja templates of the package (autoescaped: every value
from outside, such as metadata, reasons and the Order Service's error texts, is shown as
text), the headers every page carries, the session every page needs, and the pages that
say why something was refused or failed.

The Content-Security-Policy allows the service's own origin only: no inline script or
style runs (there is none; the pages need no script at all), nothing loads from elsewhere,
no other site may frame them, forms post only here.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig

from service.api.console.access import (
    CSRF_FIELD,
    Visitor,
    csrf_is_valid,
    csrf_token,
    new_session,
    session_cookie,
    visitor_of,
)
from service.api.problems import domain_problem, http_problem, unexpected_problem
from service.domain.errors import DomainError
from service.settings import Settings

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages show payments: no copy of them is kept by the browser or a proxy.
    "Cache-Control": "no-store",
}
# Where the request's session is kept between the hook and the handler (request.state).
VISITOR = "console_visitor"
NEW_SESSION = "console_new_session"
# A route handler's opt key: False for the forms that are not actions (signing in and out),
# which any session may send; every other POST of the console is an action.
ACTS = "console_acts"


def show(value: Any) -> str:
    """A value as a page shows it: times in UTC to the second, yen with separators, JSON
    for what has structure, a dash for nothing."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, Decimal):
        return f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def seconds(value: float | None) -> str:
    """A duration as people read it: ms under a second, s under two minutes, else minutes."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.0f} min"


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("service.api.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(show=show, seconds=seconds)
    return environment


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(_environment()))


def settings_of(request: Request[Any, Any, Any]) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def visitor(request: Request[Any, Any, Any]) -> Visitor:
    """The request's session (set by `with_session` before any handler runs)."""
    found: Visitor = request.state[VISITOR]
    return found


def page(request: Request[Any, Any, Any], name: str, status: int = 200, **context: Any) -> Template:
    """The template `name` with the request's session (and its cookie when it is new)."""
    settings = settings_of(request)
    current = visitor(request)
    cookies = [session_cookie(current, settings, request)] if request.state.get(NEW_SESSION) else []
    return Template(
        template_name=name,
        context={
            **context,
            "visitor": current,
            "csrf_field": CSRF_FIELD,
            "csrf": csrf_token(current, settings.auth),
        },
        status_code=status,
        headers=SECURITY_HEADERS,
        cookies=cookies,
    )


def start_session(request: Request[Any, Any, Any], session: Visitor) -> None:
    """Make `session` the request's, its cookie sent with the page."""
    request.state[VISITOR] = session
    request.state[NEW_SESSION] = True


async def with_session(request: Request[Any, Any, Any]) -> Template | None:
    """Before every console handler: the request's session, a new one when it has none
    (signed out, or open without tokens). A page asked for while signed out is the
    sign-in page; a form sent without a session, without its session's CSRF token, or an
    action from a session that may not act, is refused (403) before it is read further."""
    settings = settings_of(request)
    found = visitor_of(request, settings)
    if found is None:
        start_session(request, new_session(settings))
    else:
        request.state[VISITOR] = found
    current = visitor(request)
    if request.method == "POST":
        if found is None:
            return refused(request, "your console session has ended (or never began): sign in")
        form = await request.form()
        given = form.get(CSRF_FIELD)
        if not isinstance(given, str) or not csrf_is_valid(current, settings.auth, given):
            return refused(request, "the form's CSRF token is missing or not this session's")
        if request.route_handler.opt.get(ACTS, True) and not current.may_act:
            return refused(request, "a read-only token may look at everything but act on nothing")
        return None
    if not current.signed_in:
        return sign_in_page(request)
    return None


def sign_in_page(
    request: Request[Any, Any, Any], status: int = 200, message: str | None = None
) -> Template:
    wanted = request.url.path if request.method == "GET" else "/console/"
    return page(request, "sign_in.html", status, message=message, next=wanted)


def refused(request: Request[Any, Any, Any], why: str) -> Template:
    log.warning("console: %s %s refused: %s", request.method, request.url.path, why)
    return page(request, "refused.html", 403, why=why)


def error_page(request: Request[Any, Any, Any], problem: dict[str, Any]) -> Response[Any]:
    # An error before the session hook (a body too large) has no session yet.
    if VISITOR not in request.state:
        start_session(request, new_session(settings_of(request)))
    return page(request, "error.html", problem["status"], problem=problem)


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return error_page(request, http_problem(exc))


def on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    return error_page(request, domain_problem(exc))


def on_unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return error_page(request, unexpected_problem(request, exc))


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    DomainError: on_domain_error,
    HTTPException: on_http_error,
    Exception: on_unexpected_error,
}
