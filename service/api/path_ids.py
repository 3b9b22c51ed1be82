"""Ids, timestamps and metadata filters in paths and queries, taken as text and checked
exactly, so that anything else is the contract's 400 (Litestar's lax conversions would
take more)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from litestar.exceptions import ValidationException
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import PathParameter

from service.commands.messages import MAX_METADATA_KEY_LENGTH, METADATA_KEY
from service.domain.rules import MAX_ORDER_ID

# Taken as text so that a non-integer is the contract's 400 (parse_id), not a routing
# 404; documented as what it is, a bigint.
PAYMENT_ID = PathParameter(
    schema_extra={"type": OpenAPIType.INTEGER, "format": "int64", "minimum": 1}
)

INTEGER = re.compile(r"-?[0-9]+")
# More digits than any bigint has: an integer, but no payment can have it.
MAX_ID_DIGITS = 19


def parse_id(raw: str) -> int | None:
    """A path id: 400 (not 404) when it is not an integer, as the contract says.

    None for an integer no payment's id can be, below 1 or past a bigint (then 404).
    """
    if not INTEGER.fullmatch(raw):
        raise ValidationException(f"payment_id must be an integer, not {raw[:40]!r}")
    if len(raw.lstrip("-")) > MAX_ID_DIGITS:
        return None
    parsed = int(raw)
    return parsed if 1 <= parsed <= MAX_ORDER_ID else None


RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})")
# Documented as what it is, an RFC 3339 timestamp (taken as text: Litestar would also
# take a bare number as seconds since 1970).
TIMESTAMP = {"type": OpenAPIType.STRING, "format": "date-time"}


def parse_timestamp(raw: str | None, name: str) -> datetime | None:
    """A query timestamp, RFC 3339 with its offset, as the UTC instant it names; or a 400
    that says what is wrong.

    The driver sends an instant in UTC, so one that its offset moves out of Python's
    years 1 to 9999 (`9999-12-31T23:59:59-23:59`, `0001-01-01T00:00:00+14:00`) could not
    be sent: refused here, not by the driver (PostgreSQL's own range holds Python's).
    """
    if raw is None:
        return None
    try:
        if RFC3339.fullmatch(raw):
            return datetime.fromisoformat(raw.upper().replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        pass
    except OverflowError:
        raise ValidationException(
            f"{name} must fall within the years 1 to 9999 in UTC, not {raw[:40]!r}"
        ) from None
    raise ValidationException(f"{name} must be an RFC 3339 timestamp, not {raw[:40]!r}")


# `metadata[KEY]=VALUE` of the payments list (CONTRACT.md, "Metadata").
METADATA_FILTER = re.compile(r"metadata\[(?P<key>[^\]]*)\]")


def parse_metadata_filter(query: Iterable[tuple[str, str]]) -> dict[str, str] | None:
    """The `metadata[KEY]=VALUE` parameters of a query as {KEY: VALUE} (None when there are
    none), or a 400 naming a key no metadata can have, or one given twice."""
    wanted: dict[str, str] = {}
    for name, value in query:
        found = METADATA_FILTER.fullmatch(name)
        if found is None:
            if name.startswith("metadata"):
                raise ValidationException(f"{name[:60]!r} is not a filter: use metadata[KEY]=VALUE")
            continue
        key = found["key"]
        if not METADATA_KEY.fullmatch(key):
            raise ValidationException(
                f"metadata key {key[:60]!r} in a filter must be 1 to {MAX_METADATA_KEY_LENGTH} "
                "characters of A-Z, a-z, 0-9, '_', '.', '-'"
            )
        if key in wanted:
            raise ValidationException(f"metadata[{key}] is given twice")
        wanted[key] = value
    return wanted or None
