"""Structured logs: JSON lines when stderr is not a terminal, readable text when it is.

Every line carries the request id of the API call that caused it (the relay
sets it from the outbox row, so a payment and its webhook share one id).
Secrets never reach a log line: tokens and signatures are not logged anywhere.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

from service.request_context import request_id_var

# LogRecord attributes that are not "extra" fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}
_encoder = msgspec.json.Encoder()


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.request_id:  # type: ignore[attr-defined]
            line["request_id"] = record.request_id  # type: ignore[attr-defined]
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    """Install one handler on the root logger (idempotent)."""
    use_json = not sys.stderr.isatty() if json is None else json
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter()
        if use_json
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_payments", False)]:
        root.removeHandler(old)
    handler._payments = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Chatty libraries: httpx logs every request at INFO; stripe logs answers (a
    # PaymentIntent's client secret among them) at DEBUG.
    for name in ("httpx", "httpcore", "pgserver", "aiohttp.access", "stripe"):
        logging.getLogger(name).setLevel(logging.WARNING)
