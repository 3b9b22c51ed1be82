"""Waiting: for an event with a time limit (without asyncio.wait_for), and before a retry."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from email.utils import parsedate_to_datetime


async def wait_for_event(event: asyncio.Event, seconds: float) -> None:
    """Until `event` is set or `seconds` pass.

    Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives
    just as the event is set, and a task cancelled on stop (a relay, a background
    loop, a listener) would keep running.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


# Delays are spread by +-20%, so that clients or events which failed together (an
# outage) do not retry in lockstep.
JITTER = 0.2


def jittered(seconds: float, rng: random.Random) -> float:
    return max(0.0, seconds * rng.uniform(1 - JITTER, 1 + JITTER))


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
