"""Group commit: one statement, one round trip and one commit for many concurrent callers.

While a statement is in flight, the callers that arrive wait in a queue; the next
statement takes them all. A lone caller waits for nothing, and under load the
round trips (and the WAL flushes of their commits) are shared by every request
that arrived during the previous one, as PostgreSQL's own group commit shares
the flush of commits that arrive together.

A caller brings a list (a single create brings one item, a batch its items): its
items stay together in one statement and come back in its order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
# The statement for a group: one result per item, in the items' order.
RunGroup = Callable[[list[Item]], Awaitable[Sequence[Result]]]
Waiting = tuple[Sequence[Item], "asyncio.Future[list[Result]]"]


class GroupCommit(Generic[Item, Result]):
    def __init__(self, run: RunGroup[Item, Result], max_group: int = 1000) -> None:
        self._run = run
        # Items per statement; a caller with more runs alone.
        self._max_group = max_group
        self._queue: list[Waiting[Item, Result]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def __call__(self, items: Sequence[Item]) -> list[Result]:
        """The results of `items`, in their order, from the next statement that runs."""
        future: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        self._queue.append((items, future))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                group = self._take_group()
                # A caller that gave up before its group was taken asks for nothing.
                group = [(items, future) for items, future in group if not future.cancelled()]
                if group:
                    await self._run_group(group)
        finally:
            self._flushing = None

    def _take_group(self) -> list[Waiting[Item, Result]]:
        size = 0
        taken = 0
        for items, _ in self._queue:
            if taken and size + len(items) > self._max_group:
                break
            size += len(items)
            taken += 1
        group = self._queue[:taken]
        del self._queue[:taken]
        return group

    async def _run_group(self, group: list[Waiting[Item, Result]]) -> None:
        try:
            results = await self._run([item for items, _ in group for item in items])
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
        start = 0
        for items, future in group:
            end = start + len(items)
            if not future.done():
                future.set_result(list(results[start:end]))
            start = end
