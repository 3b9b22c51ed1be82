"""The exceptions that mean "the database failed us", in one place.

The API turns DATABASE_DOWN into a quick 503; the relay's loops, the listener and
the recorder log DATABASE_ERRORS and try again. Kept here so that a new way for a
connection to fail is added once, not in every module that must survive it.
"""

from __future__ import annotations

import asyncpg

# Unreachable, restarting, or the connection dropped: nothing is wrong with the
# request, so a client may simply retry.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, no socket file while the server is stopped
    TimeoutError,  # connect, acquire or command timeout
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # e.g. the connection was closed under a query
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,  # the server ended our session
    # A connection cut off mid-protocol (a FATAL message arrived during a query)
    # refuses its next operation with this until the socket is seen closed.
    asyncpg.InternalClientError,
)

# Any failed round trip, server-side errors included: what a retrying loop must
# survive (a bug in a statement then shows up in the logs, not as a dead loop).
DATABASE_ERRORS: tuple[type[Exception], ...] = (*DATABASE_DOWN, asyncpg.PostgresError)
