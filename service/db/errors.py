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

# A value of the statement itself is at fault, not the database: the same statement
# fails on any server, so it says nothing of a server's health (a replica's included).
# asyncpg.DataError is PostgreSQL's class 22, "data exception" (a NUL in text, 22021),
# and asyncpg raises it too, before sending anything, for an argument it cannot encode
# (SQLSTATE 22000: a datetime its offset moves past year 9999, a Decimal exponent
# below numeric's -16383). Neither is an InterfaceError nor an InternalClientError, so
# DATABASE_DOWN never takes one for an outage; the API validates what it sends
# (service/api/path_ids.py, service/domain/rules.py), so one reaching the database is a
# bug of the service's: a 500.
DATA_ERRORS: tuple[type[Exception], ...] = (asyncpg.DataError,)
