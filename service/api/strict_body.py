"""Strict JSON request bodies.

Litestar converts bodies with msgspec's lax rules (strict=False), which would
turn "100" into 100 and accept a string where the contract demands a JSON
number. These DTOs parse the raw bytes once, exactly (service.api.exact_json:
duplicate keys refused, fractions kept as Decimal), refuse a string holding NUL
(service.api.nul_characters; looked for only when the body holds the escape `\\u0000`),
then check the result against the Structs in msgspec's strict mode, keeping the
Structs as the documented OpenAPI request schemas. `amount` reaches the handlers
exactly as the client wrote it (an exact Yen), never a rounded float.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from litestar.dto import MsgspecDTO
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.spec import Reference, Schema
from litestar.typing import FieldDefinition

from service import exact_json
from service.api import nul_characters
from service.api.schemas import (
    MAX_BATCH_ITEMS,
    CreatePaymentRequest,
    CreatePaymentsRequest,
    RefundRequest,
)
from service.domain.model import yen_from_value

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

T = TypeVar("T", bound=msgspec.Struct)


def is_json(content_type: str | None) -> bool:
    """No Content-Type is taken as JSON; otherwise it must be application/json or *+json."""
    if not content_type:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def decode_json(value: bytes, content_type: str | None) -> Any:
    """A request body as JSON: 415 for another media type, 400 for malformed JSON."""
    if not is_json(content_type):
        detail = f"expected application/json, got {content_type}"
        raise HTTPException(status_code=415, detail=detail)
    try:
        return exact_json.decode(value)
    except exact_json.MalformedJSON as exc:
        raise ValidationException(f"malformed JSON body: {exc}") from exc


class StrictJSON(MsgspecDTO[T]):
    def decode_bytes(self, value: bytes) -> Any:
        data = decode_json(value, self.asgi_connection.headers.get("content-type"))
        if nul_characters.may_hold_nul(value):
            self.refuse_nul(data)
        return strictly(data, self.model_type)

    def refuse_nul(self, data: Any) -> None:
        """A 400 naming where, when a string of `data` holds NUL."""
        nul_characters.check_json(data)

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        # The Struct's own schema, named for the API (`CreatePaymentRequest`), rather than
        # the DTO's transfer model, named for the handler; the two have the same fields.
        created = schema_creator.for_field_definition(
            FieldDefinition.from_annotation(cls.model_type)
        )
        _document_strictly(_schema_of(created, schema_creator), cls.model_type)
        return created


def strictly(data: Any, model: type[T]) -> T:
    """Decoded JSON as `model`, in msgspec's strict mode, or a 400 saying what is wrong."""
    try:
        return msgspec.convert(data, model, strict=True, dec_hook=yen_from_value)
    except msgspec.ValidationError as exc:
        raise ValidationException(str(exc)) from exc


def _schema_of(created: Reference | Schema, schema_creator: SchemaCreator) -> Schema:
    if isinstance(created, Reference):
        return schema_creator.schema_registry.from_reference(created).schema
    return created


def _document_strictly(schema: Schema, model: type[msgspec.Struct]) -> None:
    """Make the generated schema say what decode_bytes enforces.

    Litestar leaves out forbid_unknown_fields and a field's `extra_json_schema` (the
    limits of metadata), and renders integer bounds as floats (2**63 - 1 becomes 2**63,
    so a validator would take an id no bigint can hold).
    """
    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    if info.forbid_unknown_fields:
        schema.additional_properties = False
    for field in info.fields:
        field_type = field.type
        prop = (schema.properties or {}).get(field.encode_name)
        if isinstance(field_type, msgspec.inspect.Metadata):
            if field_type.extra_json_schema and isinstance(prop, Schema):
                for name, value in _schema_fields(field_type.extra_json_schema).items():
                    setattr(prop, name, value)
            field_type = field_type.type
        if isinstance(field_type, msgspec.inspect.IntType) and isinstance(prop, Schema):
            if field_type.ge is not None:
                prop.minimum = field_type.ge
            if field_type.le is not None:
                prop.maximum = field_type.le


def _schema_fields(json_schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema object's keywords as the fields of Litestar's Schema (maxProperties:
    max_properties), nested schemas as Schemas."""
    fields: dict[str, Any] = {}
    for keyword, value in json_schema.items():
        name = re.sub(r"(?<!^)([A-Z])", r"_\1", keyword).lower()
        fields[name] = Schema(**_schema_fields(value)) if isinstance(value, dict) else value
    return fields


class CreatePaymentBody(StrictJSON[CreatePaymentRequest]):
    pass


# What refund_reason (service.domain.rules) takes: not blank, no NUL (text cannot hold one).
STORABLE_REASON = r"^[^\x00]*[^\s\x00][^\x00]*$"


class RefundBody(StrictJSON[RefundRequest]):
    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        created = super().create_openapi_schema(field_definition, handler_id, schema_creator)
        reason = (_schema_of(created, schema_creator).properties or {})["reason"]
        assert isinstance(reason, Schema)
        reason.min_length, reason.pattern = 1, STORABLE_REASON
        return created


class CreatePaymentsBody(StrictJSON[CreatePaymentsRequest]):
    """Only the envelope is decoded here; each entry is converted on its own, so that a
    malformed one fails alone (service/api/payments.py). The schema says what an entry must be."""

    def refuse_nul(self, data: Any) -> None:
        # A NUL inside an entry is that entry's own 400 (service/api/payments.py), not the batch's.
        entries = data.get("payments") if isinstance(data, dict) else None
        nul_characters.check_json({**data, "payments": []} if isinstance(entries, list) else data)

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        created = super().create_openapi_schema(field_definition, handler_id, schema_creator)
        entry = schema_creator.for_field_definition(
            FieldDefinition.from_annotation(CreatePaymentRequest)
        )
        _document_strictly(_schema_of(entry, schema_creator), CreatePaymentRequest)
        payments = (_schema_of(created, schema_creator).properties or {})["payments"]
        assert isinstance(payments, Schema)
        # Any entry is taken (a malformed one is answered by its own 400 in the results),
        # so the envelope's schema cannot require the create body of each.
        payments.items = Schema(
            any_of=[entry, Schema()],
            description="A create body; anything else gets its own 400 in the results.",
        )
        payments.min_items, payments.max_items = 1, MAX_BATCH_ITEMS
        return created
