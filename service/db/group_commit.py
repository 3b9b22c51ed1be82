"""Group commit: one statement, one round trip and one commit for many concurrent callers.

While a statement is in flight, the callers that arrive wait in a queue; the next
statement takes them all. A lone caller waits for nothing, and under load the
round trips (and the WAL flushes of their commits) are shared by every request
that arrived during the previous one, as PostgreSQL's own group commit shares
the flush of commits that arrive together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
# The statement for a group: one result per item, in the items' order.
RunGroup = Callable[[list[Item]], Awaitable[Sequence[Result]]]


class GroupCommit(Generic[Item, Result]):
    def __init__(self, run: RunGroup[Item, Result], max_group: int = 1000) -> None:
        self._run = run
        self._max_group = max_group
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def __call__(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                group = self._queue[: self._max_group]
                del self._queue[: self._max_group]
                # A caller that gave up before its group was taken asks for nothing.
                group = [(item, future) for item, future in group if not future.cancelled()]
                if group:
                    await self._run_group(group)
        finally:
            self._flushing = None

    async def _run_group(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._run([item for item, _ in group])
        except asyncio.CancelledError:
            # Shutting down mid-statement: its callers are told, not left waiting.
            for _, future in group:
                future.cancel()
            raise
        except Exception as exc:
            # The statement failed for all of them (the database is down, say): each
            # caller gets the error it would have had on its own.
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)
