"""The console's routes under /console/, with what every page and form shares: the session
(and its CSRF check) before any handler, and error pages instead of problem+json; and the
stylesheet, served from the package to anyone (it holds nothing of the service's)."""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.static_files import create_static_files_router

from service.api.console.actions import ConsoleActions
from service.api.console.pages import ConsolePages
from service.api.console.rendering import EXCEPTION_HANDLERS, with_session
from service.api.console.signing_in import ConsoleSignIn

# Shipped in the wheel beside this module (pyproject.toml package-data).
STATIC = Path(__file__).resolve().parent / "static"


def console_routes() -> list[Router]:
    return [
        Router(
            path="/",
            route_handlers=[ConsolePages, ConsoleActions, ConsoleSignIn],
            before_request=with_session,
            exception_handlers=EXCEPTION_HANDLERS,
            include_in_schema=False,
        ),
        create_static_files_router(
            path="/console/static",
            directories=[STATIC],
            include_in_schema=False,
            name="console-static",
        ),
    ]
