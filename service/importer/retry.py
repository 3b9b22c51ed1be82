"""Which failures are worth another attempt, and how long to wait before it."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

import aiohttp
import httpx

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

        A Retry-After the service sent (503 does) is a floor, within the cap.
        """
        ceiling = min(self.cap_seconds, self.base_seconds * 2**attempt)
        wait = self.rng.uniform(ceiling / 2, ceiling)
        if retry_after:
            with contextlib.suppress(ValueError):  # an HTTP date: keep our own backoff
                wait = max(wait, min(float(retry_after), self.cap_seconds))
        return wait
