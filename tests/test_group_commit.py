"""Group commit: callers that arrive while a statement runs share the next one."""

from __future__ import annotations

import asyncio

import pytest

from service.db.group_commit import GroupCommit


class Statement:
    """Records each group it is run for; holds each run until released."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self, group: list[int]) -> list[int]:
        self.groups.append(group)
        await self.release.wait()
        if self.fail:
            raise self.fail
        return [item * 10 for item in group]


async def test_a_lone_caller_runs_at_once_and_gets_its_own_result() -> None:
    statement = Statement()
    statement.release.set()
    assert await GroupCommit(statement)([7]) == [70]
    assert statement.groups == [[7]]


async def test_callers_arriving_during_a_statement_share_the_next_one() -> None:
    statement = Statement()
    commit = GroupCommit(statement)
    first = asyncio.create_task(commit([1]))
    await asyncio.sleep(0)  # the first statement is now running, for caller 1 alone
    later = [asyncio.create_task(commit([n])) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    statement.release.set()
    assert await first == [10]
    assert [await task for task in later] == [[20], [30], [40]]
    assert statement.groups == [[1], [2, 3, 4]]


async def test_a_failed_statement_fails_every_caller_of_its_group_only() -> None:
    statement = Statement()
    commit = GroupCommit(statement)
    first = asyncio.create_task(commit([1]))
    await asyncio.sleep(0)
    second = asyncio.create_task(commit([2]))
    statement.fail = ConnectionResetError("database went away")
    statement.release.set()
    with pytest.raises(ConnectionResetError):
        await first
    with pytest.raises(ConnectionResetError):
        await second
    statement.fail = None
    assert await commit([3]) == [30]  # the next group runs normally


async def test_a_caller_that_gave_up_before_its_group_ran_is_left_out() -> None:
    statement = Statement()
    commit = GroupCommit(statement)
    first = asyncio.create_task(commit([1]))
    await asyncio.sleep(0)
    gave_up = asyncio.create_task(commit([2]))
    stays = asyncio.create_task(commit([3]))
    await asyncio.sleep(0)
    gave_up.cancel()
    statement.release.set()
    assert (await first, await stays) == ([10], [30])
    assert statement.groups == [[1], [3]]


async def test_groups_are_bounded() -> None:
    statement = Statement()
    commit = GroupCommit(statement, max_group=2)
    first = asyncio.create_task(commit([0]))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(commit([n])) for n in (1, 2, 3, 4, 5)]
    await asyncio.sleep(0)
    statement.release.set()
    await asyncio.gather(first, *rest)
    assert statement.groups == [[0], [1, 2], [3, 4], [5]]


async def test_a_callers_items_stay_together_in_its_order() -> None:
    statement = Statement()
    commit = GroupCommit(statement, max_group=4)
    first = asyncio.create_task(commit([0]))
    await asyncio.sleep(0)
    batch = asyncio.create_task(commit([1, 2, 3]))
    single = asyncio.create_task(commit([4]))
    large = asyncio.create_task(commit([5, 6, 7, 8, 9]))
    await asyncio.sleep(0)
    statement.release.set()
    assert await batch == [10, 20, 30]
    assert (await first, await single, await large) == ([0], [40], [50, 60, 70, 80, 90])
    # A caller's items are never split; one larger than a group runs alone.
    assert statement.groups == [[0], [1, 2, 3, 4], [5, 6, 7, 8, 9]]
