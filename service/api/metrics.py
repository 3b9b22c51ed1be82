"""GET /metrics, documented as what it answers: the Prometheus text exposition format."""

from __future__ import annotations

from litestar import Response, get
from litestar.enums import MediaType
from litestar.plugins.prometheus import PrometheusController


class MetricsController(PrometheusController):
    """Litestar's Prometheus endpoint; its own declaration documents a JSON answer."""

    @get(
        operation_id="metrics",
        tags=["metrics"],
        summary="Prometheus metrics",
        media_type=MediaType.TEXT,
        response_description="Prometheus text exposition format (no authentication).",
    )
    async def get(self) -> Response[bytes]:
        """HTTP requests and latencies, payments, refunds, webhook attempts, outbox lag."""
        answer: Response[bytes] = await PrometheusController.get.fn(self)
        return answer
