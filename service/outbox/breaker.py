"""A circuit breaker on the Order Service: an outage pauses a relay instead of killing events.

Each event has its own delivery attempts; spent on an Order Service outage, a long one would
kill every event queued during it (and a dead event holds back its order's later
ones). So a relay treats the endpoint as a whole, as Svix does per endpoint: it stops
sending once the failures since the last answer show the endpoint down, and probes
with one event at a time after a pause that doubles. Failures while the breaker is
open count no delivery attempt; the first answer ends it.

What shows the endpoint down: `breaker_failures` sends that got no connection at all,
or failures (a 5xx, a timeout) of that many distinct orders. An order the Order
Service cannot handle fails every time while the others get through: however often
its events are retried, it is one order, so a few such orders never pause the rest;
each of their events spends its delivery attempts as before and dies on its schedule.

Probes alternate between the oldest due event (an Order Service that is back gets the
longest-waiting order first) and the event due the longest. A failed probe is due
again only after its scheduled delay (still without counting a delivery attempt), so the
latter kind takes the waiting events in turn: an event that fails on its own (its
order breaks the handler) cannot keep the breaker open while others would get through.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from uuid import UUID

from service.backoff import Backoff
from service.settings import OutboxSettings

log = logging.getLogger(__name__)


class Failure(enum.Enum):
    """What a failed send was, to the breaker."""

    # The event's own: it spends a delivery attempt (the Order Service was not shown down).
    OWN = "own"
    # Within an outage: no delivery attempt counted; the event stays due.
    OUTAGE = "outage"
    # The probe of an outage: no delivery attempt counted; the event waits for its scheduled
    # delay, so that the next probe takes another one.
    PROBE = "probe"


class EndpointBreaker:
    """The relay asks it before claiming (`seconds_to_probe`) and tells it each send's end."""

    def __init__(self, settings: OutboxSettings, rng: random.Random | None = None) -> None:
        self._threshold = max(1, settings.breaker_failures)
        self._min_pause = settings.breaker_min_pause_seconds
        self._max_pause = max(self._min_pause, settings.breaker_max_pause_seconds)
        # The pause before each probe: doubling while probes fail.
        self._pauses = Backoff(self._min_pause, self._max_pause, rng)
        self._reset()
        self.times_opened = 0

    def _reset(self) -> None:
        # Since the last answer: sends that got no connection, and the orders that failed.
        self._unreachable = 0
        self._failed_orders: set[int] = set()
        self._opened_at: float | None = None
        self._pauses.succeeded()
        self._probe_at = 0.0
        self._probe: UUID | None = None
        self._probes = 0

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def seconds_to_probe(self) -> float | None:
        """None while closed; else how long until a probe may go (0: now). While a probe
        is out its outcome decides: the pause's cap, which that outcome cuts short."""
        if self._opened_at is None:
            return None
        if self._probe is not None:
            return self._max_pause
        return max(0.0, self._probe_at - time.monotonic())

    def probing(self, event_id: UUID) -> None:
        """The relay sends this event to probe the Order Service (only once one may go)."""
        self._probe = event_id
        self._probes += 1
        log.info("probing the Order Service with webhook %s", event_id)

    def admits(self, event_id: UUID) -> bool:
        """May this claimed event be sent? While open, only the probe."""
        return self._opened_at is None or event_id == self._probe

    def probe_in_turn(self) -> bool:
        """Whether the next probe is the event due the longest (every other probe),
        not the oldest due one."""
        return self._probes % 2 == 1

    def answered(self) -> None:
        """The Order Service answered (2xx, or a 4xx about one event): it is up."""
        if self._opened_at is not None:
            log.warning(
                "the Order Service answers again after %.1fs: webhook deliveries resume",
                time.monotonic() - self._opened_at,
            )
        self._reset()

    def failed(self, event_id: UUID, order_id: int, *, unreachable: bool) -> Failure:
        """A send failed: no connection (`unreachable`), a timeout or a 5xx."""
        now = time.monotonic()
        if self._opened_at is not None:
            if event_id != self._probe:
                return Failure.OUTAGE
            self._probe = None
            self._probe_at = now + self._pauses.failed()
            return Failure.PROBE
        if unreachable:
            self._unreachable += 1
        self._failed_orders.add(order_id)
        if self._unreachable >= self._threshold or len(self._failed_orders) >= self._threshold:
            self._opened_at = now
            self._probe_at = now + self._pauses.failed()
            self.times_opened += 1
            log.warning(
                "the Order Service failed sends of %d orders (%d without a connection) "
                "since its last answer: webhook deliveries paused, one probe every "
                "%.1f-%.1fs until it answers; no delivery attempts are spent meanwhile",
                len(self._failed_orders),
                self._unreachable,
                self._min_pause,
                self._max_pause,
            )
        # The sends that opened it spend a delivery attempt: they told the outage apart.
        return Failure.OWN

    def probe_now(self) -> None:
        """An operator asked for deliveries now (retry, replay): probe without waiting."""
        if self._opened_at is not None and self._probe is None:
            self._probe_at = time.monotonic()
            self._pauses.succeeded()
