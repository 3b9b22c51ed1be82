"""Waiting for an event with a time limit, without asyncio.wait_for."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_for_event(event: asyncio.Event, seconds: float) -> None:
    """Until `event` is set or `seconds` pass.

    Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives
    just as the event is set, and a task cancelled on stop (a relay, a background
    loop, a listener) would keep running.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
