"""Waiting before trying again: a doubling backoff with jitter, and a server's Retry-After.

One policy for every loop that retries (a relay's claims and restarts, its LISTEN
connection, its circuit breaker's probes, relay processes, `payments import`): the
wait doubles from `first` up to `cap` with each failure in a row, spread by +-20%
so that clients or events which failed together (an outage) do not retry in
lockstep, and starts from `first` again after a success. A small class, not a
retrying library (tenacity, stamina): those wrap one call in a retry loop, while
these loops wait in their own way (for stop, for a notification) and the breaker
keeps its pause between probes that are separate sends.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

JITTER = 0.2


def jittered(seconds: float, rng: random.Random) -> float:
    return max(0.0, seconds * rng.uniform(1 - JITTER, 1 + JITTER))


class Backoff:
    """`failed()` says how long to wait after one more failure in a row; `succeeded()`
    starts over. `delay(n)` is the same wait for the n-th failure, for callers that
    count their own failures."""

    def __init__(self, first: float, cap: float, rng: random.Random | None = None) -> None:
        self.first = first
        self.cap = max(first, cap)
        self.failures = 0
        self._rng = rng or random.Random()

    def delay(self, failures: int) -> float:
        """The wait after `failures` failures in a row (1: the first)."""
        doublings = min(max(failures, 1) - 1, 64)  # 2**64 * first is past any cap
        return jittered(min(self.cap, self.first * 2**doublings), self._rng)

    def failed(self) -> float:
        self.failures += 1
        return self.delay(self.failures)

    def succeeded(self) -> None:
        self.failures = 0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
