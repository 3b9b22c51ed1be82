"""GET /metrics, documented as what it answers: the Prometheus text exposition format."""

from __future__ import annotations

import asyncio
import contextlib

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.plugins.prometheus import PrometheusController

from service.api.dependencies import ReadSide
from service.db.errors import DATABASE_DOWN


class MetricsController(PrometheusController):
    """Litestar's Prometheus endpoint; its own declaration documents a JSON answer."""

    @get(
        operation_id="metrics",
        tags=["metrics"],
        summary="Prometheus metrics",
        media_type=MediaType.TEXT,
        response_description="Prometheus text exposition format (no authentication).",
    )
    async def get(self, read: NamedDependency[ReadSide]) -> Response[bytes]:
        """HTTP requests and latencies, payments, refunds, webhook attempts, outbox lag."""
        # The outbox gauges are read for the scrapes, as a collector does: nothing to
        # refresh while nobody scrapes; at most once a second however many scrape
        # (SharedBacklog). With the database down they keep their last values and the
        # other metrics are still answered.
        with contextlib.suppress(*DATABASE_DOWN, TimeoutError):
            async with asyncio.timeout(read.settings.database.command_timeout):
                await read.backlog.read()
        answer: Response[bytes] = await PrometheusController.get.fn(self)
        return answer
