"""The Litestar application factory: `service.app:create_app`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points

import click
from click import Group
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.plugins import CLIPlugin
from litestar.plugins.prometheus import PrometheusConfig

from service.api.auth import bearer_security, open_access_warning
from service.api.console.rendering import template_config
from service.api.console.routes import console_routes
from service.api.dependencies import DEPENDENCIES
from service.api.events import EventController
from service.api.gateway_callbacks import GatewayCallbackController
from service.api.health import HealthController, MetricsController
from service.api.middleware import BodyReadTimeoutMiddleware, RequestIdMiddleware
from service.api.nul_characters import NulCharacterMiddleware
from service.api.openapi import docs_assets, openapi_config
from service.api.payments import PaymentController, batch_router
from service.api.problems import EXCEPTION_HANDLERS
from service.api.schemas import TYPE_ENCODERS, YenSchemaPlugin
from service.lifespan import lifespan
from service.log_config import configure_logging
from service.settings import Settings, load_settings

log = logging.getLogger(__name__)
# HTTP request counts and latencies; paths grouped by route template.
PROMETHEUS = PrometheusConfig(app_name="payments", prefix="payments_http", group_path=True)
# pyproject.toml's entry points naming the project's commands (service/cli.py and beside it).
COMMANDS_ENTRY_POINTS = "payments.commands"


class ProjectCommands(CLIPlugin):
    """Adds the project's commands (db, serve, ops, outbox, relay, import) to Litestar's CLI.

    Found through the package's entry points, so that the app imports nothing of
    the CLI (imports run cli -> app).
    """

    def on_cli_init(self, cli: Group) -> None:
        for entry_point in entry_points(group=COMMANDS_ENTRY_POINTS):
            cli.add_command(entry_point.load(), entry_point.name)


class OpenAccessWarning(CLIPlugin):
    """Warns at start-up of `payments run` and `litestar run` when anyone who reaches the
    address may pay and refund (service.api.auth.open_access_warning).

    The address is the run command's own `--host` (or LITESTAR_HOST, which `payments`
    sets from [server] host): Litestar enters this around the server it starts, in the
    command's click context; the app itself is never told where it listens. A Unix
    socket (`--uds`) or an inherited one (`--fd`) has no address to judge.
    """

    def on_cli_init(self, cli: Group) -> None:
        return None  # no command of its own

    @contextmanager
    def server_lifespan(self, app: Litestar) -> Iterator[None]:
        context = click.get_current_context(silent=True)
        params = {} if context is None else context.params
        if "host" in params and params.get("uds") is None and params.get("fd") is None:
            settings: Settings = app.state.settings
            if warning := open_access_warning(settings.auth, params["host"], params["port"]):
                log.warning(warning)
        yield


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the app from `settings` (default: litestar.toml plus PAYMENTS_* overrides)."""
    settings = settings or load_settings()
    configure_logging()
    return Litestar(
        route_handlers=[
            # The payments API, whose documented security follows [auth] tokens.
            Router(
                path="/",
                route_handlers=[
                    PaymentController,
                    batch_router(settings),
                    EventController,
                ],
                security=bearer_security(settings),
            ),
            GatewayCallbackController,
            HealthController,
            MetricsController,
            docs_assets(),
            # The operator console: its own sign-in and sessions (service/api/console/).
            *console_routes(),
        ],
        middleware=[
            RequestIdMiddleware(),
            PROMETHEUS.middleware,
            BodyReadTimeoutMiddleware(settings.server.body_read_timeout_seconds),
            NulCharacterMiddleware(),
        ],
        logging_config=None,
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        state=State({"settings": settings}),
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=openapi_config(settings),
        type_encoders=TYPE_ENCODERS,
        template_config=template_config(),
        plugins=[ProjectCommands(), OpenAccessWarning(), YenSchemaPlugin()],
    )
