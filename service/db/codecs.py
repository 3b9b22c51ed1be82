"""What every new connection is told up front: the arrays of built-in types (decoded
without asking the server first), and JSON read and written by msgspec.

json and jsonb values arrive as the Python values they hold (a payment's metadata, the
read side's refunds and charge attempts), decoded once, where asyncpg would hand over
their text for every reader to decode again; and a value bound to a json or jsonb
parameter is written by msgspec (Structs included, amounts as exact numbers).

Arrays of built-in types:

asyncpg knows text[] and oid[] from the start; for any other array (bigint[],
numeric[], uuid[], ...) a new connection first runs a type introspection query,
which on a fresh server session costs 5 to 13 ms of the server's time, on the
request path, and then again on every new connection (asyncpg issue #1272). The
service binds such arrays in most of its statements, and PostgreSQL fixes these types'
OIDs, so each new connection is told them up front.

This leans on asyncpg internals: the protocol settings' `register_data_types` and the
shape of an introspection row. tests/test_codecs.py fails loudly when an
upgrade changes either.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

# Array type OID: its element type's OID and name (PostgreSQL's pg_type.dat).
BUILTIN_ARRAYS: dict[int, tuple[int, str]] = {
    1000: (16, "bool"),
    1007: (23, "int4"),
    1016: (20, "int8"),
    1022: (701, "float8"),
    1185: (1184, "timestamptz"),
    1231: (1700, "numeric"),
    2951: (2950, "uuid"),
}


def _introspection_row(oid: int, element_oid: int, element: str) -> dict[str, Any]:
    """What asyncpg's introspection query answers for the array type `oid`."""
    return {
        "oid": oid,
        "ns": "pg_catalog",
        "name": f"_{element}",
        "kind": b"b",
        "basetype": None,
        "elemtype": element_oid,
        "elemdelim": b",",
        "range_subtype": None,
        "attrtypoids": None,
        "attrnames": None,
        "depth": 0,
        "basetype_name": None,
        "elemtype_name": element,
        "range_subtype_name": None,
    }


ROWS = [_introspection_row(oid, *element) for oid, element in BUILTIN_ARRAYS.items()]


async def register_builtin_arrays(connection: asyncpg.Connection) -> None:
    """asyncpg's `init` hook: this connection decodes the arrays above without asking."""
    connection._protocol.get_settings().register_data_types(ROWS)  # type: ignore[attr-defined]


def _exact(value: object) -> Decimal:
    if isinstance(value, Decimal):  # an amount of a Decimal type of its own (Yen)
        return Decimal(value)
    raise NotImplementedError(f"no JSON for {type(value).__name__}")


# Amounts as JSON numbers (msgspec writes a Decimal as a string by default): PostgreSQL
# reads a JSON number exactly, as numeric.
_ENCODER = msgspec.json.Encoder(decimal_format="number", enc_hook=_exact)


def _json_text(value: Any) -> str:
    return _ENCODER.encode(value).decode()


# Fractions as exact Decimals, as numeric holds them (an amount is never a binary float).
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


async def prepare_connection(connection: asyncpg.Connection) -> None:
    """asyncpg's `init` hook of every connection of the service: the arrays above, and
    JSON through msgspec (built-in types: no introspection either)."""
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name,
            schema="pg_catalog",
            encoder=_json_text,
            decoder=_DECODER.decode,
            format="text",
        )
    # Last: setting a codec forgets the data types registered before it.
    await register_builtin_arrays(connection)
