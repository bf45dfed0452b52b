"""The wire shapes of structured output in both OpenAI APIs -> the neutral :class:`ResponseFormat`.

Chat completions nest the schema (``response_format: {"type": "json_schema", "json_schema":
{"name", "schema", "strict"}}``); the Responses API puts the same fields flat in
``text.format``. ``{"type": "text"}`` is no format. A ``json_schema`` needs a schema that is
itself a valid JSON Schema (a 400 naming the field otherwise, as OpenAI answers). How the format
is emulated and enforced: :mod:`.structured`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import attrs

from ..errors import InvalidRequest
from .conversation import ResponseFormat
from .convert import Length
from .structured import schema_error

__all__ = ["ChatResponseFormat", "FlatTextFormat", "chat_response_format", "text_format"]


@attrs.frozen(kw_only=True)
class PlainText:
    type: Literal["text"]


@attrs.frozen(kw_only=True)
class JsonObject:
    type: Literal["json_object"]


@attrs.frozen(kw_only=True)
class JsonSchemaSpec:
    name: Annotated[str, Length(1, 64)]
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


@attrs.frozen(kw_only=True)
class JsonSchema:
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ChatResponseFormat = PlainText | JsonObject | JsonSchema


@attrs.frozen(kw_only=True)
class FlatTextFormat:
    """The Responses API's ``text.format``."""

    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


def chat_response_format(wire: ChatResponseFormat | None) -> ResponseFormat | None:
    """Chat completions' ``response_format``."""
    if wire is None or isinstance(wire, PlainText):
        return None
    if isinstance(wire, JsonObject):
        return ResponseFormat(kind="json_object")
    spec = wire.json_schema
    return _json_schema(spec.name, spec.description, spec.schema, spec.strict, "response_format.json_schema.schema")


def text_format(wire: FlatTextFormat | None) -> ResponseFormat | None:
    """The Responses API's ``text.format``."""
    if wire is None or wire.type == "text":
        return None
    if wire.type == "json_object":
        return ResponseFormat(kind="json_object")
    return _json_schema(wire.name, wire.description, wire.schema, wire.strict, "text.format.schema")


def _json_schema(name: str | None, description: str | None, schema: dict[str, Any] | None,
                 strict: bool | None, param: str) -> ResponseFormat:
    if schema is None:
        raise InvalidRequest(f"{param}: required for a json_schema format", param=param)
    problem = schema_error(schema)
    if problem is not None:
        raise InvalidRequest(f"{param}: not a valid JSON Schema: {problem}", param=param)
    return ResponseFormat(kind="json_schema", name=name or "", description=description or "",
                          schema=schema, strict=bool(strict))
