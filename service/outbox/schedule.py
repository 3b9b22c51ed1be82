"""When to try a failed webhook again: the retry schedule, jitter and Retry-After."""

from __future__ import annotations

import random
from collections.abc import Sequence

from service.backoff import jittered, parse_retry_after

# Answers whose Retry-After header is a request to wait, not a hint.
RETRY_AFTER_STATUSES = frozenset({429, 503})
# A Retry-After is honoured up to the schedule's longest delay, but never
# capped below this, so a short test schedule still lets a server ask for a minute.
MIN_RETRY_AFTER_CAP = 60.0


def is_dead(delivery_attempts: int, schedule: Sequence[float]) -> bool:
    """The schedule has one delay per retry, so len(schedule) + 1 delivery attempts in all."""
    return delivery_attempts > len(schedule)


def scheduled_delay(delivery_attempts: int, schedule: Sequence[float], rng: random.Random) -> float:
    """The schedule's delay after `delivery_attempts` attempts, spread by +-20% so that
    events which failed together (an Order Service outage) do not retry in lockstep."""
    base = schedule[min(delivery_attempts, len(schedule)) - 1] if schedule else 0.0
    return jittered(base, rng)


def retry_delay(
    delivery_attempts: int,
    schedule: Sequence[float],
    rng: random.Random,
    *,
    status: int | None = None,
    retry_after: str | None = None,
) -> float:
    """The delay before the next delivery attempt; a 429/503's Retry-After overrides
    the schedule."""
    if status in RETRY_AFTER_STATUSES:
        requested = parse_retry_after(retry_after)
        if requested is not None:
            cap = max(max(schedule, default=0.0), MIN_RETRY_AFTER_CAP)
            return min(requested, cap)
    return scheduled_delay(delivery_attempts, schedule, rng)
