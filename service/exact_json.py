"""One exact, unambiguous decode of a JSON request body.

msgspec keeps the last of two equal keys without a word and knows only binary
floats. A money request must not be read one way here and another way by a
proxy or an auditor (RFC 8259 section 4 leaves duplicates to the parser), nor
rounded: so bodies are parsed once with the standard library, refusing
duplicate keys, keeping every fraction as an exact Decimal, and turning the
parser's own failures (deep nesting, huge integers) into one error.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


class MalformedJSON(ValueError):
    """The body is not one well-formed, unambiguous JSON document; the message says why."""


def _refuse_surrogates(*texts: str) -> None:
    # A JSON escape can spell a lone surrogate ("\ud800"), which no UTF-8 store or
    # response can hold.
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedJSON("a string holds an unpaired UTF-16 surrogate escape") from None


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MalformedJSON(f"duplicate key {key!r}")
            seen.add(key)
    for key, value in pairs:
        # Keys and string values may be echoed in an error message or stored; ASCII, the
        # common case, is checked without encoding.
        if not key.isascii() or (isinstance(value, str) and not value.isascii()):
            _refuse_surrogates(key, value if isinstance(value, str) else "")
    return obj


def _not_json(constant: str) -> Any:
    raise MalformedJSON(f"{constant} is not a JSON number")


_decoder = json.JSONDecoder(
    object_pairs_hook=_unique_object, parse_float=Decimal, parse_constant=_not_json
)


def decode(body: bytes) -> Any:
    """The body as Python values (objects as dicts, fractions as Decimal), or MalformedJSON."""
    try:
        # Strict UTF-8, unlike json.loads(bytes): no BOM, no UTF-16, no encoded surrogates.
        text = body.decode("utf-8")
        value: Any = _decoder.decode(text)
    except RecursionError:
        raise MalformedJSON("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, the int digit limit, ours
        raise MalformedJSON(str(exc)) from None
    except ArithmeticError:  # decimal.InvalidOperation: an exponent past what Decimal holds
        raise MalformedJSON("a number is out of any representable range") from None
    return value
