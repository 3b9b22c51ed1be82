"""Sending one order webhook: the HTTP call, its Standard Webhooks headers, its outcome."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import httpx
from httpx_aiohttp import AiohttpTransport

from service.outbox.events import ClaimedEvent, Outcome, Result
from service.outbox.schedule import is_dead, retry_delay
from service.settings import Settings
from service.signing import secret_key, sign

log = logging.getLogger(__name__)
ERROR_EXCERPT_CHARS = 200
USER_AGENT = "payments-outbox-relay"


def create_client(settings: Settings) -> httpx.AsyncClient:
    """One keep-alive client for all of a relay's sends.

    The aiohttp transport: httpx's own pool managed about a fifth of the
    throughput at 32 requests in flight.
    """
    # One line per request at INFO would drown the relay's own logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    slots = settings.outbox.concurrency
    limits = httpx.Limits(max_connections=slots, max_keepalive_connections=slots)
    return httpx.AsyncClient(
        transport=AiohttpTransport(limits=limits),
        timeout=httpx.Timeout(settings.outbox.request_timeout_seconds),
        headers={"user-agent": USER_AGENT},
    )


def _excerpt(text: str) -> str:
    return " ".join(text.split())[:ERROR_EXCERPT_CHARS]


class WebhookSender:
    def __init__(
        self, client: httpx.AsyncClient, settings: Settings, rng: random.Random | None = None
    ) -> None:
        self._client = client
        self._base_url = settings.order_service.url.rstrip("/")
        secret = settings.order_service.webhook_secret
        self._key = secret_key(secret) if secret else None
        self._timeout = settings.outbox.request_timeout_seconds
        self._schedule = settings.outbox.retry_schedule_seconds
        self._rng = rng or random.Random()

    def headers(self, event: ClaimedEvent, timestamp: int) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "webhook-id": str(event.id),
            "webhook-timestamp": str(timestamp),
        }
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, str(event.id), timestamp, event.body)
        return headers

    async def send(self, event: ClaimedEvent) -> Outcome:
        url = f"{self._base_url}/api/v1/orders/{event.order_id}/webhook"
        headers = self.headers(event, int(time.time()))
        try:
            # httpx's timeout bounds each socket operation; this bounds the whole call,
            # which the lease arithmetic relies on.
            async with asyncio.timeout(self._timeout):
                response = await self._client.post(url, content=event.body, headers=headers)
        except TimeoutError:
            return self._failed(event, f"timed out after {self._timeout:g}s")
        # Whatever stops us from getting an answer is a failed attempt, to be retried.
        except Exception as exc:
            # The transport re-raises aiohttp's errors as httpx ones of a looser kind
            # (a refused connection becomes ConnectTimeout); the original says more.
            cause = exc.__cause__ or exc
            return self._failed(event, f"{type(cause).__name__}: {_excerpt(str(cause))}")
        if response.is_success:
            log.debug("webhook %s for order %s delivered", event.id, event.order_id)
            return Outcome(event.id, Result.DELIVERED)
        error = f"HTTP {response.status_code}"
        if text := _excerpt(response.text):
            error += f": {text}"
        return self._failed(event, error, response.status_code, response.headers.get("retry-after"))

    def _failed(
        self,
        event: ClaimedEvent,
        error: str,
        status: int | None = None,
        retry_after: str | None = None,
    ) -> Outcome:
        attempt = event.attempts + 1
        dead = is_dead(attempt, self._schedule)
        delay = 0.0
        if not dead:
            delay = retry_delay(
                attempt, self._schedule, self._rng, status=status, retry_after=retry_after
            )
        log.warning(
            "webhook %s for order %s failed (attempt %d, request %s): %s; %s",
            event.id,
            event.order_id,
            attempt,
            event.request_id,
            error,
            "dead, no attempts left" if dead else f"next attempt in {delay:.2f}s",
            extra={"event_id": str(event.id), "order_id": event.order_id, "attempt": attempt},
        )
        return Outcome(event.id, Result.FAILED, error=error, delay_seconds=delay, dead=dead)
