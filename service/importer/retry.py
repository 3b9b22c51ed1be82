"""Which failures are worth another attempt, and how long to wait before it."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import aiohttp
import httpx

from service.backoff import Backoff, parse_retry_after

# The request may not have reached the service, or its answer was lost: safe to send again,
# because every create carries an Idempotency-Key.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TransportError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
)
# 409: the same Idempotency-Key is still running (an earlier attempt); 408/429: try later.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def describe(exc: BaseException) -> tuple[str, bool]:
    """A network error as text, and whether the request may have reached the service."""
    cause = exc.__cause__ or exc  # the aiohttp transport wraps its own errors
    refused = isinstance(cause, httpx.ConnectError | aiohttp.ClientConnectorError)
    return f"{type(cause).__name__}: {cause}".rstrip(": "), not refused


def is_retryable(status: int) -> bool:
    return status >= 500 or status in RETRYABLE_STATUSES


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5  # attempts after the first
    base_seconds: float = 0.25
    cap_seconds: float = 10.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Exponential backoff with jitter before attempt `attempt + 1` (attempt counts from 0).

        A Retry-After the service sent (503 does), in seconds or as a date, is a
        floor, within the cap.
        """
        wait = Backoff(self.base_seconds, self.cap_seconds, self.rng).delay(attempt + 1)
        requested = parse_retry_after(retry_after)
        if requested is not None:
            wait = max(wait, min(requested, self.cap_seconds))
        return wait
