"""The id of the request being served, visible to every log line it causes."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str:
    """The id of the request being served (RequestIdMiddleware sets it), or a new one."""
    return request_id_var.get() or uuid.uuid4().hex
