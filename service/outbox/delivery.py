"""Sending one order webhook: the HTTP call, its Standard Webhooks headers, its outcome."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from functools import cache
from types import TracebackType

import aiohttp
import httpx

from service.db.relay_store import ClaimedEvent, Outcome, Result
from service.outbox.breaker import EndpointBreaker, Failure
from service.outbox.schedule import is_dead, retry_delay
from service.settings import Settings
from service.signing import secret_keys, sign_all

log = logging.getLogger(__name__)
ERROR_EXCERPT_CHARS = 200
# Of the Order Service's answer only the start is read (for the error excerpt): a huge
# or endless body must cost the relay neither memory nor time.
MAX_ANSWER_BYTES = 4096
USER_AGENT = "payments-outbox-relay"


@cache
def _tls_context() -> ssl.SSLContext:
    # Verified against certifi's CA bundle, as httpx does everywhere else in the service.
    # Loading it takes a few hundred milliseconds: once per process, not per relay.
    return httpx.create_ssl_context()


def _excerpt(text: str) -> str:
    return " ".join(text.split())[:ERROR_EXCERPT_CHARS]


async def _answer_start(response: aiohttp.ClientResponse) -> bytes:
    # Read even when only the status matters: a connection whose answer was left
    # unread is closed instead of kept alive for the next send.
    received = b""
    while len(received) < MAX_ANSWER_BYTES:
        chunk = await response.content.read(MAX_ANSWER_BYTES - len(received))
        if not chunk:
            break
        received += chunk
    return received


class WebhookSender:
    """One keep-alive connection pool to the Order Service for all of a relay's sends.

    aiohttp's client itself: of the three measured (bench/clients.py; the figures are in
    the README), it took half the CPU per webhook of httpx over aiohttp's transport and a
    tenth of httpx's own pool's. Whatever the client, a send keeps the same bounds: the
    request timeout on the whole call, at most 4 KiB of the answer read, no redirects
    followed, TLS verified.
    """

    def __init__(
        self, settings: Settings, breaker: EndpointBreaker, rng: random.Random | None = None
    ) -> None:
        self._breaker = breaker
        self._base_url = settings.order_service.url.rstrip("/")
        # Decoded once: every send signs with each (old and new during a rotation).
        self._keys = secret_keys(settings.order_service.webhook_secrets)
        self._timeout = settings.outbox.request_timeout_seconds
        self._schedule = settings.outbox.retry_schedule_seconds
        self._rng = rng or random.Random()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.outbox.concurrency, ssl=_tls_context()),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"user-agent": USER_AGENT, "content-type": "application/json"},
            # The answer is read raw (a compressed one would only garble the excerpt).
            skip_auto_headers=("accept-encoding",),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._session.close()

    def headers(self, event: ClaimedEvent, timestamp: int) -> dict[str, str]:
        webhook_id = str(event.id)
        headers = {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp)}
        if self._keys:
            headers["webhook-signature"] = sign_all(self._keys, webhook_id, timestamp, event.body)
        return headers

    async def send(self, event: ClaimedEvent) -> Outcome:
        """POST the event's body as it is stored, and judge the answer."""
        url = f"{self._base_url}/api/v1/orders/{event.order_id}/webhook"
        try:
            # aiohttp's total timeout should bound the call; this bounds it for sure,
            # which the lease arithmetic relies on.
            async with (
                asyncio.timeout(self._timeout),
                self._session.post(
                    url,
                    data=event.body,
                    headers=self.headers(event, int(time.time())),
                    allow_redirects=False,
                ) as response,
            ):
                status = response.status
                answer = await _answer_start(response)
                retry_after = response.headers.get("retry-after")
        except TimeoutError:
            error = f"timed out after {self._timeout:g}s"
            return self._endpoint_failed(event, error, unreachable=False)
        # Whatever stops us from getting an answer is a failed delivery attempt, to be retried.
        except Exception as exc:
            error = f"{type(exc).__name__}: {_excerpt(str(exc))}"
            return self._endpoint_failed(event, error, unreachable=True)
        if 200 <= status < 300:  # its body, if any, is of no interest
            self._breaker.answered()
            log.debug("webhook %s for order %s delivered", event.id, event.order_id)
            return Outcome(event.id, Result.DELIVERED)
        excerpt = _excerpt(answer.decode("utf-8", errors="replace"))
        error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
        if status >= 500:
            return self._endpoint_failed(event, error, status=status, retry_after=retry_after)
        # A 4xx (or a redirect, never followed) is an answer about this event: the
        # Order Service itself is up.
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
        # The delay the delivery attempt would have waited for, though none is counted.
        delay = 0.0
        if failure is Failure.PROBE:
            delay = retry_delay(
                event.delivery_attempts + 1,
                self._schedule,
                self._rng,
                status=status,
                retry_after=retry_after,
            )
        log.info(
            "webhook %s for order %s not delivered, the Order Service is down "
            "(no delivery attempt counted%s): %s",
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
        attempt = event.delivery_attempts + 1
        dead = is_dead(attempt, self._schedule)
        delay = 0.0
        if not dead:
            delay = retry_delay(
                attempt, self._schedule, self._rng, status=status, retry_after=retry_after
            )
        log.warning(
            "webhook %s for order %s failed (delivery attempt %d, request %s): %s; %s",
            event.id,
            event.order_id,
            attempt,
            event.request_id,
            error,
            "dead, no attempts left" if dead else f"next attempt in {delay:.2f}s",
            extra={"event_id": str(event.id), "order_id": event.order_id, "attempt": attempt},
        )
        return Outcome(event.id, Result.FAILED, error=error, delay_seconds=delay, dead=dead)
