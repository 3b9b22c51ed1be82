"""How stale the read replica is, found off the request path by a periodic probe.

Each round reads the primary's WAL position, then the replica's replayed position.
The replica has then replayed everything the primary had written by the time of the
latest earlier sample at or below its position: it is known current as of that
sample, and its lag is the time since. An idle primary writes nothing, so the
replica catches up with the sample just taken and its lag is zero; a replay
timestamp (`pg_last_xact_replay_timestamp`) would instead grow without end there.

Under steady writes the replica is a little behind every fresh sample, so the lag
read is about one probe interval: an upper bound, never an underestimate, which
is why the bound must exceed the interval (service/settings.py checks it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from service.db.errors import DATABASE_ERRORS
from service.db.reader import Reader, ReplicaState
from service.metrics import REPLICA_LAG

log = logging.getLogger(__name__)
MAX_SAMPLES = 1024  # beyond it the oldest go: the lag then reads longer, never shorter


class ReplicaProbe:
    """Sets `reader.status` each round: ok, lagging, unreachable or not-a-standby."""

    def __init__(self, reader: Reader, *, max_lag_seconds: float, timeout: float) -> None:
        assert reader.replica is not None, "a probe needs a replica to probe"
        self.reader = reader
        self.replica = reader.replica
        self.max_lag_seconds = max_lag_seconds
        self.timeout = timeout
        self._samples: deque[tuple[float, int]] = deque(maxlen=MAX_SAMPLES)
        self._current_as_of: float | None = None
        self._first_probe_at = 0.0
        reader.status.state = "starting"

    async def check(self) -> None:
        """One round; the primary unreachable leaves the status as it was (no new writes)."""
        queries = self.reader.queries
        async with asyncio.timeout(self.timeout), self.reader.primary.connection() as connection:
            primary = await queries.primary_wal_position(connection)
        now = time.monotonic()
        self._first_probe_at = self._first_probe_at or now
        self._samples.append((now, primary))
        try:
            async with asyncio.timeout(self.timeout), self.replica.connection() as connection:
                replica = await queries.replica_replay_position(connection)
        except DATABASE_ERRORS as exc:
            self._set("unreachable", None, f"{exc!r}")
            return
        if not replica["in_recovery"] or replica["replayed"] is None:
            self._set("not-a-standby", None, "it is not in recovery")
            return
        while self._samples and self._samples[0][1] <= replica["replayed"]:
            self._current_as_of = self._samples.popleft()[0]
        if self._current_as_of is None:
            # Not yet seen current: still starting, until that has taken longer than the bound.
            waited = now - self._first_probe_at
            state: ReplicaState = "starting" if waited <= self.max_lag_seconds else "lagging"
            self._set(state, None, "never yet current")
        elif now - self._current_as_of <= self.max_lag_seconds:
            self._set("ok", now - self._current_as_of, "")
        else:
            why = f"not known current within {self.max_lag_seconds}s"
            self._set("lagging", now - self._current_as_of, why)

    def _set(self, state: ReplicaState, lag: float | None, why: str) -> None:
        status = self.reader.status
        if state != status.state:
            if state == "ok":
                log.info("read replica current: reads go to the replica")
            else:
                log.warning("read replica %s (%s): reads go to the primary", state, why)
        status.state = state
        status.lag_seconds = lag
        REPLICA_LAG.set(-1 if lag is None else lag)
