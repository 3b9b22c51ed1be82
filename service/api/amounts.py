"""How the API writes and documents an amount of yen (service.domain.model.Yen)."""

from __future__ import annotations

from typing import Any

from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.plugins import OpenAPISchemaPlugin

from service.domain.model import Yen, yen_to_json
from service.domain.rules import MAX_AMOUNT, MIN_AMOUNT

# The one encoder hook: a Yen is a JSON number (`89800.0`), never msgspec's Decimal string.
TYPE_ENCODERS: dict[Any, Any] = {Yen: yen_to_json}


class YenSchemaPlugin(OpenAPISchemaPlugin):
    """Documents a Yen as what the API sends and takes: a whole number within the limits."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return value is Yen

    def to_openapi_schema(self, field_definition: Any, schema_creator: Any) -> Schema:
        return Schema(
            type=OpenAPIType.NUMBER,
            minimum=float(MIN_AMOUNT),
            maximum=float(MAX_AMOUNT),
            multiple_of=1,
            description="Whole yen (JPY has no minor unit), per transaction.",
        )
