"""Sending one order webhook: the HTTP call, its Standard Webhooks headers, its outcome."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from functools import cache

import httpx
from httpx_aiohttp import AiohttpTransport

from service.outbox.breaker import EndpointBreaker, Failure
from service.outbox.events import ClaimedEvent, Outcome, Result
from service.outbox.schedule import is_dead, retry_delay
from service.settings import Settings
from service.signing import secret_keys, sign_all

log = logging.getLogger(__name__)
ERROR_EXCERPT_CHARS = 200
# Of the Order Service's answer only the start is read (for the error excerpt): a huge
# or endless body must cost the relay neither memory nor time.
MAX_ANSWER_BYTES = 4096
USER_AGENT = "payments-outbox-relay"


def create_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """One keep-alive connection pool for all of a relay's sends.

    httpx's transport API, without its client: a webhook needs no cookies, redirects,
    auth flows or URL merging, and skipping them took a third off the CPU of a send.
    The aiohttp transport: httpx's own pool managed about a fifth of the throughput
    at 32 requests in flight.
    """
    slots = settings.outbox.concurrency
    limits = httpx.Limits(max_connections=slots, max_keepalive_connections=slots)
    return AiohttpTransport(limits=limits, verify=_tls_context())


@cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle takes a few hundred milliseconds: once per process, not per relay.
    return httpx.create_ssl_context()


async def _answer_excerpt(response: httpx.Response) -> str:
    received = b""
    async for chunk in response.aiter_raw():
        received += chunk
        if len(received) >= MAX_ANSWER_BYTES:
            break
    return _excerpt(received[:MAX_ANSWER_BYTES].decode("utf-8", errors="replace"))


def _excerpt(text: str) -> str:
    return " ".join(text.split())[:ERROR_EXCERPT_CHARS]


class WebhookSender:
    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        settings: Settings,
        breaker: EndpointBreaker,
        rng: random.Random | None = None,
    ) -> None:
        self._transport = transport
        self._breaker = breaker
        self._base_url = httpx.URL(settings.order_service.url)
        self._base_path = self._base_url.path.rstrip("/")
        # Decoded once: every send signs with each (old and new during a rotation).
        self._keys = secret_keys(settings.order_service.webhook_secrets)
        self._timeout = settings.outbox.request_timeout_seconds
        self._timeouts = httpx.Timeout(self._timeout).as_dict()
        self._schedule = settings.outbox.retry_schedule_seconds
        self._rng = rng or random.Random()

    def headers(self, event: ClaimedEvent, timestamp: int) -> dict[str, str]:
        headers = {
            "user-agent": USER_AGENT,
            "content-type": "application/json",
            "webhook-id": str(event.id),
            "webhook-timestamp": str(timestamp),
        }
        if self._keys:
            headers["webhook-signature"] = sign_all(
                self._keys, str(event.id), timestamp, event.body
            )
        return headers

    async def send(self, event: ClaimedEvent) -> Outcome:
        path = f"{self._base_path}/api/v1/orders/{event.order_id}/webhook"
        request = httpx.Request(
            "POST",
            self._base_url.copy_with(path=path),
            content=event.body,
            headers=self.headers(event, int(time.time())),
            extensions={"timeout": self._timeouts},
        )
        try:
            # The transport's timeout bounds each socket operation; this bounds the whole
            # call, which the lease arithmetic relies on.
            async with asyncio.timeout(self._timeout):
                response = await self._transport.handle_async_request(request)
                try:
                    # Read even when only the status matters: a connection whose answer
                    # was left unread is closed instead of kept alive for the next send.
                    excerpt = await _answer_excerpt(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            error = f"timed out after {self._timeout:g}s"
            return self._endpoint_failed(event, error, unreachable=False)
        # Whatever stops us from getting an answer is a failed attempt, to be retried.
        except Exception as exc:
            # The transport re-raises aiohttp's errors as httpx ones of a looser kind
            # (a refused connection becomes ConnectTimeout); the original says more.
            cause = exc.__cause__ or exc
            error = f"{type(cause).__name__}: {_excerpt(str(cause))}"
            return self._endpoint_failed(event, error, unreachable=True)
        status = response.status_code
        if response.is_success:  # its body, if any, is of no interest
            self._breaker.answered()
            log.debug("webhook %s for order %s delivered", event.id, event.order_id)
            return Outcome(event.id, Result.DELIVERED)
        error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
        retry_after = response.headers.get("retry-after")
        if status >= 500:
            return self._endpoint_failed(event, error, status=status, retry_after=retry_after)
        # A 4xx is an answer about this event: the Order Service itself is up.
        self._breaker.answered()
        return self._failed(event, error, status, retry_after)

    def _endpoint_failed(
        self,
        event: ClaimedEvent,
        error: str,
        *,
        unreachable: bool = False,
        status: int | None = None,
        retry_after: str | None = None,
    ) -> Outcome:
        failure = self._breaker.failed(event.id, event.order_id, unreachable=unreachable)
        if failure is Failure.OWN:
            return self._failed(event, error, status, retry_after)
        # The delay the attempt would have waited for, though none is counted.
        delay = 0.0
        if failure is Failure.PROBE:
            delay = retry_delay(
                event.attempts + 1,
                self._schedule,
                self._rng,
                status=status,
                retry_after=retry_after,
            )
        log.info(
            "webhook %s for order %s not delivered, the Order Service is down "
            "(no attempt counted%s): %s",
            event.id,
            event.order_id,
            f"; due again in {delay:.2f}s" if delay else "",
            error,
            extra={"event_id": str(event.id), "order_id": event.order_id},
        )
        return Outcome(event.id, Result.DEFERRED, error=error, delay_seconds=delay)

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
