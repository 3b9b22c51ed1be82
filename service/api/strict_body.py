"""Strict JSON request bodies.

Litestar converts bodies with msgspec's lax rules (strict=False), which would
turn "100" into 100 and accept a string where the contract demands a JSON
number. These DTOs decode the raw bytes with msgspec in strict mode instead,
keeping the Structs as the documented OpenAPI request schemas. A fractional
`amount` reaches the handlers as an exact Decimal, never a rounded float.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

import msgspec
from litestar.dto import MsgspecDTO
from litestar.exceptions import HTTPException, ValidationException

from service.api.schemas import CreatePaymentRequest, RefundRequest

T = TypeVar("T", bound=msgspec.Struct)


@cache
def _decoder(model: type[Any]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(model, strict=True)


# Untyped decoding that keeps every JSON float exactly as written.
_exact = msgspec.json.Decoder(float_hook=Decimal)


def is_json(content_type: str | None) -> bool:
    """No Content-Type is taken as JSON; otherwise it must be application/json or *+json."""
    if not content_type:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class StrictJSON(MsgspecDTO[T]):
    def decode_bytes(self, value: bytes) -> Any:
        content_type = self.asgi_connection.headers.get("content-type")
        if not is_json(content_type):
            raise HTTPException(
                status_code=415, detail=f"expected application/json, got {content_type}"
            )
        try:
            body = _decoder(self.model_type).decode(value)
        except msgspec.ValidationError as exc:
            raise ValidationException(str(exc)) from exc
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise ValidationException(f"malformed JSON body: {exc}") from exc
        if isinstance(getattr(body, "amount", None), float):
            # A binary float would turn 99.99999999999999999 into 100.0: money rules
            # must see the number exactly as the client wrote it.
            body = msgspec.structs.replace(body, amount=_exact.decode(value)["amount"])
        return body


class CreatePaymentBody(StrictJSON[CreatePaymentRequest]):
    pass


class RefundBody(StrictJSON[RefundRequest]):
    pass
