"""What orchestrators, load balancers and scrapers ask (no authentication): liveness,
readiness, and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.openapi import ResponseSpec
from litestar.plugins.prometheus import PrometheusController

from service.api.dependencies import ReadSide
from service.db.errors import DATABASE_DOWN


class Readiness(msgspec.Struct, frozen=True):
    status: str  # "ready" | "unavailable"
    database: str  # "ok" | "unreachable"
    outbox_pending: int | None = None
    outbox_oldest_age_seconds: float | None = None
    outbox_dead: int | None = None
    outbox_blocked: int | None = None
    outbox_lag: str | None = None  # "ok" | "lagging"
    # This process's relay: "running" | "paused" (the Order Service is down: it
    # probes) | "restarting" (it crashed) | "stopped" | "off" (none in this process).
    relay: str | None = None
    # Where the read side reads now ("primary" | "replica"), and why: the replica's
    # state, "off" (none configured), "starting" (not probed yet), "ok", "lagging",
    # "unreachable" or "not-a-standby"; reads go to the replica only when "ok".
    reads: str | None = None
    replica: str | None = None
    replica_lag_seconds: float | None = None


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", operation_id="live")
    async def live(self) -> dict[str, str]:
        """The process is up and serving HTTP."""
        return {"status": "alive"}

    @get(
        "/ready",
        operation_id="ready",
        responses={
            503: ResponseSpec(
                data_container=Readiness,
                generate_examples=False,
                description="Unready: the database is unreachable "
                '(`{"status": "unavailable", "database": "unreachable"}`).',
            )
        },
    )
    async def ready(self, read: NamedDependency[ReadSide]) -> Response[Readiness]:
        """503 while the database is unreachable; reports the outbox's lag, the relay's
        state and where reads go (the replica, or the primary and why).

        A lagging, paused or restarting relay (Order Service down, a crash) does not
        make the service unready: payments keep being accepted and their webhooks
        wait in the outbox, which is the point of having one. Nor does a replica that
        is down or lagging: reads go to the primary meanwhile.
        """
        settings = read.settings
        try:
            async with asyncio.timeout(settings.database.command_timeout):
                backlog = await read.backlog.read()
        except DATABASE_DOWN:
            down = Readiness(status="unavailable", database="unreachable")
            return Response(down, status_code=503)
        lagging = backlog.oldest_age_seconds > settings.outbox.max_lag_seconds
        replica = read.reader.status
        return Response(
            Readiness(
                status="ready",
                database="ok",
                outbox_pending=backlog.pending,
                outbox_oldest_age_seconds=round(backlog.oldest_age_seconds, 3),
                outbox_dead=backlog.dead,
                outbox_blocked=backlog.blocked,
                outbox_lag="lagging" if lagging else "ok",
                relay="off" if read.relay is None else read.relay.state,
                reads=read.reader.source,
                replica=replica.state,
                replica_lag_seconds=None
                if replica.lag_seconds is None
                else round(replica.lag_seconds, 3),
            )
        )


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
