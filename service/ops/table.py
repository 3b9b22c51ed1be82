"""Printing an ops query's answer: an aligned text table as psql draws it, or JSON."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from service.ops.queries import OpsResult

_json = msgspec.json.Encoder(decimal_format="number")


def cell(value: Any) -> str:
    """One value as text: NULL is empty, times to the second, JSON as JSON."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return _json.encode(value).decode()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, timedelta):
        return str(value - timedelta(microseconds=value.microseconds))
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def format_table(result: OpsResult) -> str:
    """Header, rule, rows (numbers right-aligned), then the row count."""
    count = len(result.rows)
    footer = f"({count} row{'' if count == 1 else 's'})"
    if result.query.shape == "value":
        return cell(result.rows[0][0]) if result.rows else ""
    if not result.columns:
        return footer
    texts = [[cell(value) for value in row] for row in result.rows]
    widths = [
        max([len(name), *(len(row[i]) for row in texts)]) for i, name in enumerate(result.columns)
    ]
    numeric = [
        any(_is_number(row[i]) for row in result.rows)
        and all(row[i] is None or _is_number(row[i]) for row in result.rows)
        for i in range(len(result.columns))
    ]
    lines = [
        " | ".join(
            name.center(width) for name, width in zip(result.columns, widths, strict=True)
        ).rstrip(),
        "-+-".join("-" * width for width in widths),
    ]
    for row in texts:
        lines.append(
            " | ".join(
                text.rjust(width) if right else text.ljust(width)
                for text, width, right in zip(row, widths, numeric, strict=True)
            ).rstrip()
        )
    lines.append(footer)
    return "\n".join(lines)


def format_json(result: OpsResult) -> str:
    """Rows as a list of objects; a one-row query as one object (or null); a value as itself."""
    objects = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    answer: Any
    if result.query.shape == "rows":
        answer = objects
    elif result.query.shape == "row":
        answer = objects[0] if objects else None
    else:
        answer = result.rows[0][0] if result.rows else None
    return _json.encode(answer).decode()
