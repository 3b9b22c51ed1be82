"""The retry schedule: backoff with jitter, Retry-After, when an event is dead."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from service.backoff import parse_retry_after
from service.outbox.schedule import is_dead, retry_delay, scheduled_delay
from service.settings import OutboxSettings

SCHEDULE = (5.0, 30.0, 120.0)


def test_backoff_follows_the_schedule_within_twenty_percent() -> None:
    rng = random.Random(1)
    for attempts, base in enumerate(SCHEDULE, start=1):
        delays = [scheduled_delay(attempts, SCHEDULE, rng) for _ in range(200)]
        assert all(0.8 * base <= d <= 1.2 * base for d in delays)
        assert len(set(delays)) > 100  # spread, not lockstep


def test_dead_after_one_attempt_more_than_the_schedule_has_delays() -> None:
    assert not is_dead(3, SCHEDULE)
    assert is_dead(4, SCHEDULE)
    assert is_dead(1, ())


def test_default_schedule_goes_from_seconds_to_hours() -> None:
    schedule = OutboxSettings().retry_schedule_seconds
    assert schedule[0] < 60 and schedule[-1] >= 3600
    assert list(schedule) == sorted(schedule)


def test_retry_after_in_seconds_or_http_date() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(later, now=now.timestamp()) == 90.0
    assert parse_retry_after(format_datetime(now, usegmt=True), now=now.timestamp() + 5) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_retry_after_overrides_only_on_429_and_503_and_is_capped() -> None:
    rng = random.Random(2)
    assert retry_delay(1, SCHEDULE, rng, status=503, retry_after="42") == 42.0
    assert retry_delay(1, SCHEDULE, rng, status=429, retry_after="1") == 1.0
    assert retry_delay(1, SCHEDULE, rng, status=503, retry_after="99999") == 120.0
    assert 4.0 <= retry_delay(1, SCHEDULE, rng, status=500, retry_after="42") <= 6.0
    # A short schedule still lets a server ask for a minute.
    assert retry_delay(1, (0.1,), rng, status=503, retry_after="600") == 60.0
