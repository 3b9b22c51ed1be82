"""The one backoff (service/backoff.py): doubling with jitter up to a cap, afresh after a
success; pure, no waiting."""

from __future__ import annotations

import random

from service.backoff import Backoff


def test_the_wait_doubles_from_first_up_to_the_cap_within_twenty_percent() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(3))
    for base in (0.5, 1.0, 2.0, 4.0, 4.0, 4.0):
        wait = backoff.failed()
        assert 0.8 * base <= wait <= 1.2 * base, (base, wait)


def test_a_success_starts_from_the_first_wait_again() -> None:
    backoff = Backoff(0.1, 10.0, random.Random(4))
    for _ in range(6):
        backoff.failed()
    backoff.succeeded()
    assert 0.08 <= backoff.failed() <= 0.12


def test_the_nth_wait_is_the_same_for_callers_that_count_their_own_failures() -> None:
    backoff = Backoff(0.25, 10.0, random.Random(5))
    assert 0.2 <= backoff.delay(1) <= 0.3
    assert 0.8 <= backoff.delay(3) <= 1.2
    assert 8.0 <= backoff.delay(1000) <= 12.0  # capped, however many


def test_waits_are_spread_so_that_failures_together_do_not_retry_in_lockstep() -> None:
    waits = {Backoff(1.0, 1.0).failed() for _ in range(100)}
    assert len(waits) > 90
