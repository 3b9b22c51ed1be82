"""Waking relays when outbox rows commit, without a NOTIFY in every payment.

A NOTIFY inside the payment's own statement makes every commit queue on
PostgreSQL's notification lock: pgbench ran the payment SQL at 1,369/s with it
and 2,007/s without (64 clients, this 2-core machine). So the writer wakes the
relays of its own process directly, and relays in other processes through one
NOTIFY per burst of commits, sent off the request path. A lost or late wake-up
only delays delivery until the next poll; it never loses an event.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from service.db.database import Database
from service.db.errors import DATABASE_ERRORS
from service.db.relay_store import RelayStore

log = logging.getLogger(__name__)
# At most one NOTIFY per this many seconds while rows keep committing: a relay in another
# process hears of a commit no sooner, so this is what its webhooks may wait for.
NOTIFY_EVERY_SECONDS = 0.002
# The payload of this process's NOTIFYs: its own relay, woken directly, skips them.
PROCESS_SENDER = uuid.uuid4().hex


class OutboxWakeup:
    """`committed()` after an outbox row commits; relays `subscribe` to hear it."""

    def __init__(self) -> None:
        self._local: list[Callable[[], None]] = []
        self._pending = asyncio.Event()

    def subscribe(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake` on every commit; returns the unsubscribe function."""
        self._local.append(wake)
        return lambda: self._local.remove(wake)

    def committed(self) -> None:
        for wake in self._local:
            wake()
        self._pending.set()

    async def notify_other_processes(self, db: Database) -> None:
        """Until cancelled: one NOTIFY per burst of commits, for relays elsewhere."""
        store = RelayStore(db.pool, db.queries)
        while True:
            await self._pending.wait()
            self._pending.clear()
            try:
                await store.notify_relays(PROCESS_SENDER)
            except DATABASE_ERRORS as exc:
                # The other relays poll; the database being away is reported elsewhere.
                log.debug("could not notify other relays: %s", exc)
            await asyncio.sleep(NOTIFY_EVERY_SECONDS)
