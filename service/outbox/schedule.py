"""When to try a failed webhook again: the retry schedule, jitter and Retry-After."""

from __future__ import annotations

import random
from collections.abc import Sequence

from service.waiting import jittered, parse_retry_after

__all__ = ["backoff", "is_dead", "parse_retry_after", "retry_delay"]


# Answers whose Retry-After header is a request to wait, not a hint.
RETRY_AFTER_STATUSES = frozenset({429, 503})
# A Retry-After is honoured up to the schedule's longest delay, but never
# capped below this, so a short test schedule still lets a server ask for a minute.
MIN_RETRY_AFTER_CAP = 60.0


def is_dead(attempts_made: int, schedule: Sequence[float]) -> bool:
    """The schedule has one delay per retry, so len(schedule) + 1 attempts in all."""
    return attempts_made > len(schedule)


def backoff(attempts_made: int, schedule: Sequence[float], rng: random.Random) -> float:
    """The scheduled delay after `attempts_made` attempts, spread by +-20% so that
    events which failed together (an Order Service outage) do not retry in lockstep."""
    base = schedule[min(attempts_made, len(schedule)) - 1] if schedule else 0.0
    return jittered(base, rng)


def retry_delay(
    attempts_made: int,
    schedule: Sequence[float],
    rng: random.Random,
    *,
    status: int | None = None,
    retry_after: str | None = None,
) -> float:
    """The delay before the next attempt; a 429/503's Retry-After overrides the schedule."""
    if status in RETRY_AFTER_STATUSES:
        requested = parse_retry_after(retry_after)
        if requested is not None:
            cap = max(max(schedule, default=0.0), MIN_RETRY_AFTER_CAP)
            return min(requested, cap)
    return backoff(attempts_made, schedule, rng)
