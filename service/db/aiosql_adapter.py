"""aiosql's asyncpg adapter, minus a per-query cost on the hot path.

The stock adapter decides whether it was given a pool or a connection with
`"acquire" in dir(client)` on every call, which lists every attribute of the
object: several percent of the service's CPU per payment. Here no check
is needed at all: asyncpg's pool has the same `fetchrow`, `fetch`, `fetchval`
and `execute` as a connection, acquiring and releasing around the statement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiosql.adapters.asyncpg import AsyncPGAdapter


class LeanAsyncPGAdapter(AsyncPGAdapter):
    def _values(self, query_name: str, parameters: Any) -> Any:
        # aiosql passes keyword arguments as a dict; the statement takes them as $1, $2, ...
        if isinstance(parameters, dict):
            return [parameters[name] for name in self.var_sorted[query_name]]
        return parameters

    async def select(
        self, conn: Any, query_name: str, sql: str, parameters: Any, record_class: Any = None
    ) -> AsyncIterator[Any]:
        values = self._values(query_name, parameters)
        for row in await conn.fetch(sql, *values):
            yield row if record_class is None else record_class(**dict(row))

    async def select_one(
        self, conn: Any, query_name: str, sql: str, parameters: Any, record_class: Any = None
    ) -> Any:
        row = await conn.fetchrow(sql, *self._values(query_name, parameters))
        return row if row is None or record_class is None else record_class(**dict(row))

    async def select_value(self, conn: Any, query_name: str, sql: str, parameters: Any) -> Any:
        return await conn.fetchval(sql, *self._values(query_name, parameters))

    async def insert_returning(self, conn: Any, query_name: str, sql: str, parameters: Any) -> Any:
        row = await conn.fetchrow(sql, *self._values(query_name, parameters))
        if not row:
            return None
        return row[0] if len(row) == 1 else row

    async def insert_update_delete(
        self, conn: Any, query_name: str, sql: str, parameters: Any
    ) -> Any:
        return await conn.execute(sql, *self._values(query_name, parameters))
