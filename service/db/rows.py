"""Rows as the domain's shapes: one conversion, by field name, no copying by hand."""

from __future__ import annotations

from typing import Any, TypeVar

import asyncpg
import msgspec

from service.domain.model import yen_from_value

T = TypeVar("T")


def row_as(row: asyncpg.Record | dict[str, Any], shape: type[T]) -> T:
    """The row's columns as `shape` (a msgspec Struct); columns it has no field for are left out."""
    return msgspec.convert(dict(row), shape, dec_hook=yen_from_value)
