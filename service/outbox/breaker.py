"""A circuit breaker on the Order Service: an outage pauses a relay instead of killing events.

Each event has its own attempts; spent on an Order Service outage, a long one would
kill every event queued during it (and a dead event holds back its order's later
ones). So a relay treats the endpoint as a whole, as Svix does per endpoint: once
sends of several events fail in a row with a connection error, a timeout or a 5xx,
it stops sending and probes with one event at a time after a pause that doubles.
Failures while the breaker is open count no attempt; the first answer ends it.
A single event that keeps failing among successes is that event's problem: it
cannot open the breaker, and spends its attempts as before.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from uuid import UUID

from service.settings import OutboxSettings
from service.waiting import jittered

log = logging.getLogger(__name__)


class EndpointBreaker:
    def __init__(self, settings: OutboxSettings, rng: random.Random | None = None) -> None:
        self._threshold = max(1, settings.breaker_failures)
        self._min_pause = settings.breaker_min_pause_seconds
        self._max_pause = max(self._min_pause, settings.breaker_max_pause_seconds)
        self._rng = rng or random.Random()
        # Set whenever a probe may be due sooner, or the breaker closes.
        self.changed = asyncio.Event()
        self._reset()
        self.times_opened = 0

    def _reset(self) -> None:
        self._in_a_row = 0
        self._failed_events: set[UUID] = set()
        self._all_unreachable = True
        self._opened_at: float | None = None
        self._pause = self._min_pause
        self._probe_at = 0.0
        self._probe: UUID | None = None

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def seconds_to_probe(self) -> float | None:
        """None while closed; else how long until a probe may go (0: now)."""
        if self._opened_at is None:
            return None
        if self._probe is not None:  # its outcome decides; changed is set then
            return self._max_pause
        return max(0.0, self._probe_at - time.monotonic())

    def admit(self, event_id: UUID) -> bool:
        """May this event be sent now? While open, one probe at a time once the pause is over."""
        if self._opened_at is None:
            return True
        if self._probe is not None or time.monotonic() < self._probe_at:
            return False
        self._probe = event_id
        log.info("probing the Order Service with webhook %s", event_id)
        return True

    def answered(self) -> None:
        """The Order Service answered (2xx, or a 4xx about one event): it is up."""
        if self._opened_at is not None:
            log.warning(
                "the Order Service answers again after %.1fs: webhook deliveries resume",
                time.monotonic() - self._opened_at,
            )
            self.changed.set()
        self._reset()

    def failed(self, event_id: UUID, *, unreachable: bool) -> bool:
        """A send failed with a connection error, a timeout or a 5xx.

        True when the failure falls within an outage: the event spends no attempt.
        """
        now = time.monotonic()
        if self._opened_at is not None:
            if event_id == self._probe:
                self._probe = None
                self._pause = min(self._pause * 2, self._max_pause)
                self._probe_at = now + jittered(self._pause, self._rng)
                self.changed.set()
            return True
        self._in_a_row += 1
        self._failed_events.add(event_id)
        self._all_unreachable = self._all_unreachable and unreachable
        # One event failing alone may be that event's fault (its order breaks the
        # handler), unless no connection could be made at all.
        if self._in_a_row >= self._threshold and (
            len(self._failed_events) > 1 or self._all_unreachable
        ):
            self._opened_at = now
            self._probe_at = now + jittered(self._pause, self._rng)
            self.times_opened += 1
            log.warning(
                "the Order Service failed %d sends in a row: webhook deliveries paused, "
                "one probe every %.1f-%.0fs until it answers; no attempts are spent meanwhile",
                self._in_a_row,
                self._min_pause,
                self._max_pause,
            )
        return False

    def probe_now(self) -> None:
        """An operator asked for deliveries now (retry, replay): probe without waiting."""
        if self._opened_at is not None and self._probe is None:
            self._probe_at = time.monotonic()
            self._pause = self._min_pause
            self.changed.set()
