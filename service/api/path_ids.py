"""Payment ids in paths: taken as text, so that a non-integer is the contract's 400, not 404."""

from __future__ import annotations

import re

from litestar.exceptions import ValidationException
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import PathParameter

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

    None for an integer too long to be any payment's id (then 404).
    """
    if not INTEGER.fullmatch(raw):
        raise ValidationException(f"payment_id must be an integer, not {raw[:40]!r}")
    if len(raw.lstrip("-")) > MAX_ID_DIGITS:
        return None
    return int(raw)
