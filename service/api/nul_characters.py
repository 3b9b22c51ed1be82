"""NUL (U+0000), the one character PostgreSQL text cannot hold: a request that carries one
where the service reads it is a 400 naming where, and nothing of it is sent to the database.

Percent-encoded in the path or the query (`%00`) it is refused for every route by
NulCharacterMiddleware, before authentication, idempotency or the handler (a path that no
route takes is the router's 404 before that, and nothing reads it); escaped in a JSON
string (`\\u0000`), once the body is decoded (service/api/strict_body.py, the gateway
callback), the batch refusing only the entry that holds it, as the single create would;
in a header, where the header is read (Idempotency-Key, webhook-id).

A body is walked for it only when its bytes hold that escape (`may_hold_nul`): the strict
JSON decoder refuses a raw NUL inside a string, so the escape is the one way in, and a
search of the bytes costs far less than a walk of every string in Python.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.exceptions import ValidationException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

NUL = "\x00"
# How a JSON string spells NUL: the only way one gets into a decoded body.
ESCAPED_NUL = b"\\u0000"


def refuse(where: str) -> ValidationException:
    return ValidationException(f"{where} must not hold a NUL character (U+0000)")


def check_text(text: str, where: str) -> None:
    """A 400 naming `where` when `text` holds NUL."""
    if NUL in text:
        raise refuse(where)


def may_hold_nul(body: bytes) -> bool:
    """Whether a string of the JSON document `body` can hold NUL once decoded: only when
    the body spells it as an escape (the decoder refuses a raw NUL in a string)."""
    return ESCAPED_NUL in body


def check_json(value: Any) -> None:
    """A 400 naming the first string of a decoded JSON document (a value or a key) that
    holds NUL, by its JSON path (`$.payments[0].currency`, `a key of $`)."""
    pending: list[tuple[str, Any]] = [("$", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            check_text(item, f"`{path}`")
        elif isinstance(item, dict):
            for key in item:
                check_text(key, f"a key of `{path}`")
            pending.extend((f"{path}.{key}", child) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            children = [(f"{path}[{index}]", child) for index, child in enumerate(item)]
            pending.extend(reversed(children))


def check_query(query_string: bytes) -> None:
    """A 400 naming the parameter whose name or value holds NUL (`%00`, or the raw byte)."""
    if b"%00" not in query_string and b"\x00" not in query_string:
        return
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        check_text(name, "a query parameter's name")
        check_text(value, f"query parameter {name!r}")
    raise refuse("the query string")  # a NUL that parse_qsl did not attribute


class NulCharacterMiddleware(ASGIMiddleware):
    """Refuses a NUL in the (decoded) path or the query string of any request."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        http_scope = cast(HTTPScope, scope)
        if NUL in http_scope["path"]:
            for name, value in http_scope["path_params"].items():
                if isinstance(value, str):
                    check_text(value, f"path parameter {name!r}")
            raise refuse("the path")
        check_query(http_scope["query_string"])
        await next_app(scope, receive, send)
