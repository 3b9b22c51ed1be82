"""The Litestar application factory: `service.app:create_app`."""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import State
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from service.api.amounts import TYPE_ENCODERS, YenSchemaPlugin
from service.api.batch import batch_router
from service.api.dependencies import DEPENDENCIES
from service.api.gateway_callbacks import GatewayCallbackController
from service.api.health import HealthController
from service.api.openapi import openapi_config
from service.api.payments import PaymentController
from service.api.problems import EXCEPTION_HANDLERS
from service.api.request_id import RequestIdMiddleware
from service.lifespan import lifespan
from service.log_config import configure_logging
from service.settings import Settings, load_settings

# HTTP request counts and latencies; paths grouped by route template.
PROMETHEUS = PrometheusConfig(app_name="payments", prefix="payments_http", group_path=True)


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the app from `settings` (default: litestar.toml plus PAYMENTS_* overrides)."""
    settings = settings or load_settings()
    configure_logging()
    return Litestar(
        route_handlers=[
            PaymentController,
            batch_router(settings),
            GatewayCallbackController,
            HealthController,
            PrometheusController,
        ],
        middleware=[RequestIdMiddleware(), PROMETHEUS.middleware],
        logging_config=None,
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        state=State({"settings": settings}),
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=openapi_config(),
        type_encoders=TYPE_ENCODERS,
        plugins=[YenSchemaPlugin()],
    )
