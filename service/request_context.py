"""The id of the request being served, visible to every log line it causes, and how many
batch calls this process is answering."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str:
    """The id of the request being served (RequestIdMiddleware sets it), or a new one."""
    return request_id_var.get() or uuid.uuid4().hex


class _Batches:
    """Batch calls this process is answering now (the batch endpoint counts them)."""

    count = 0


@contextmanager
def answering_a_batch() -> Iterator[None]:
    """Around a batch call: while any runs, the relay of this process holds back."""
    _Batches.count += 1
    try:
        yield
    finally:
        _Batches.count -= 1


def batches_in_flight() -> int:
    return _Batches.count
