"""Sending the rows with bounded concurrency; stopping cleanly when asked."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.importer.batches import BatchClient
from service.importer.client import PaymentsClient
from service.importer.outcomes import Outcome, Result
from service.importer.rows import Row

# Answers that say the whole import is misdirected, not that one row is wrong: stop sending.
HALTING = {
    401: "the service refused the credentials",
    403: "the service refused the credentials",
    404: "no payments API at this URL",
    405: "no payments API at this URL",
}
STOPPED = "the import stopped before this row was sent; run the import again"
ABORTED = "interrupted while in flight: the outcome is unknown; run the import again"


@dataclass
class Stop:
    """`graceful`: send no new row, let the calls in flight finish. `abort`: cancel them too."""

    graceful: asyncio.Event = field(default_factory=asyncio.Event)
    abort: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""

    def halt(self, reason: str) -> None:
        """Send no new row (the first reason given is kept)."""
        if not self.graceful.is_set():
            self.reason = reason
            self.graceful.set()

    def escalate(self, reason: str) -> None:
        """A first request halts; a second one aborts the calls in flight (Ctrl-C twice)."""
        if self.graceful.is_set():
            self.abort.set()
        self.halt(reason)


def local_result(row: Row) -> Result | None:
    """The outcome of a row that is never sent, or None for a row to send."""
    if row.payment is None:
        return Result(Outcome.INVALID, detail=row.problem)
    if row.first_line:
        return Result(
            Outcome.DUPLICATE_IN_FILE,
            detail=f"order {row.payment.order_id} is already on line {row.first_line}",
        )
    return None


async def run_import(
    rows: Sequence[Row],
    client: PaymentsClient,
    *,
    concurrency: int,
    stop: Stop,
    on_result: Callable[[Result], None] = lambda _: None,
    batch_size: int | None = None,
) -> list[Result]:
    """One result per row, in row order. Rows never sent end `not_sent`.

    With `batch_size` (and a BatchClient), each call pays up to that many rows; the
    batches are cut from the rows to send in file order, so a rerun of the same file
    makes the same batches (and so replays their Idempotency-Keys).
    """
    results: list[Result | None] = [None] * len(rows)
    to_send: list[int] = []
    for index, row in enumerate(rows):
        local = local_result(row)
        if local is None:
            to_send.append(index)
        else:
            results[index] = local
            on_result(local)
    size = batch_size or 1
    pending = iter([to_send[i : i + size] for i in range(0, len(to_send), size)])
    in_flight: set[int] = set()

    async def send(unit: list[int]) -> list[Result]:
        payments = [payment for index in unit if (payment := rows[index].payment) is not None]
        if batch_size is None:
            return [await client.pay(payments[0])]
        assert isinstance(client, BatchClient)
        return await client.pay_batch(payments)

    async def worker() -> None:
        while not stop.graceful.is_set():
            unit = next(pending, None)
            if unit is None:
                return
            in_flight.update(unit)
            try:
                answers = await send(unit)
            except Exception as exc:  # one odd answer must not end the whole import
                failed = Result(Outcome.FAILED, detail=f"unexpected error: {exc!r}", sends=1)
                answers = [failed] * len(unit)
            in_flight.difference_update(unit)
            for index, result in zip(unit, answers, strict=True):
                results[index] = result
                on_result(result)
                if result.http_status in HALTING:
                    stop.halt(f"{HALTING[result.http_status]}: {result.detail}")

    slots = max(1, min(concurrency, -(-len(to_send) // size)))
    workers = asyncio.gather(*(worker() for _ in range(slots)))
    aborting = asyncio.ensure_future(stop.abort.wait())
    aborted = True
    try:
        either: list[asyncio.Future[Any]] = [workers, aborting]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        aborted = not workers.done()
    finally:
        aborting.cancel()
        if aborted:  # a second Ctrl-C (or this task was cancelled): cancel the calls in flight
            workers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await workers
    if not aborted:
        workers.result()  # workers catch the errors of a call: this raises only on a bug
    return [_final(result, index in in_flight) for index, result in enumerate(results)]


def _final(result: Result | None, was_in_flight: bool) -> Result:
    if result is not None:
        return result
    if was_in_flight:
        return Result(Outcome.FAILED, detail=ABORTED, sends=1)
    return Result(Outcome.NOT_SENT, detail=STOPPED)
