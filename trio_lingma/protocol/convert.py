"""The gateway's one cattrs converter: JSON request bodies → frozen attrs wire models.

Theory of operation
-------------------
Both public wire APIs are JSON, so this converter structures *JSON values*, strictly:

* Types are never coerced. cattrs' defaults call ``str(x)``/``int(x)``, which would turn
  ``"model": 3`` into ``"3"`` and ``"stop": "END"`` into ``("E", "N", "D")``; here a string
  field only accepts a JSON string, a tuple/list only a JSON array, an attrs class or a
  ``dict`` only a JSON object, an ``int`` only an integer (never a boolean).
* Unknown object keys are ignored (``forbid_extra_keys=False``): real clients send fields the
  gateway does not model (``user``, ``seed``, ``metadata``...), and both APIs tolerate them.
* Unions are resolved by the JSON kind of the value (``str | tuple[Part, ...] | None``), and
  several attrs classes of the same kind by their ``type`` tag, as both APIs do.
* Range and size rules ride on the type: ``Annotated[float, Bounds(0, 2)]``,
  ``Annotated[tuple[str, ...], Length(1, 4)]``, so they are checked where the field is
  structured and their errors carry the field path.

Every failure is collected by cattrs' detailed validation; :func:`structure` turns the first
one into :class:`~trio_lingma.errors.InvalidRequest` naming the path the way OpenAI does,
``messages[2].role: must be one of system, user``, with ``param="messages[2].role"``.
Adapters raise :class:`FieldError` from their own checks for the same treatment.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    list_structure_factory,
    mapping_structure_factory,
)
from cattrs.errors import AttributeValidationNote, ClassValidationError, IterableValidationError
from cattrs.gen import make_dict_structure_fn
from cattrs.v import format_exception, transform_error

from ..errors import InvalidRequest, shorten

__all__ = [
    "Bounds",
    "FieldError",
    "Length",
    "converter",
    "describe_error",
    "json_kind",
    "make_converter",
    "structure",
]

T = TypeVar("T")
Hook = Callable[[Any, Any], Any]


class FieldError(ValueError):
    """A value is invalid; the message is shown to the client after the field path."""


@attrs.frozen
class Bounds:
    """``Annotated`` metadata: an inclusive numeric range (either end may be open)."""

    lo: float | None = None
    hi: float | None = None

    def check(self, value: Any) -> None:
        got = f" (got {_short(value)})"
        if self.lo is not None and self.hi is not None and not self.lo <= value <= self.hi:
            raise FieldError(f"must be between {_num(self.lo)} and {_num(self.hi)}{got}")
        if self.lo is not None and not value >= self.lo:
            raise FieldError(f"must be at least {_num(self.lo)}{got}")
        if self.hi is not None and not value <= self.hi:
            raise FieldError(f"must be at most {_num(self.hi)}{got}")


@attrs.frozen
class Length:
    """``Annotated`` metadata: how many items an array (or characters a string) may have."""

    lo: int = 0
    hi: int | None = None

    def check(self, value: Any) -> None:
        what = "characters" if isinstance(value, str) else "items"
        if len(value) < self.lo:
            message = f"must have at least {self.lo} {what}"
            raise FieldError("must not be empty" if self.lo == 1 else message)
        if self.hi is not None and len(value) > self.hi:
            raise FieldError(f"must have at most {self.hi} {what}")


# --- JSON kinds -------------------------------------------------------------------------

_KIND_ARTICLE = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def json_kind(value: Any) -> str:
    """The JSON kind of a decoded JSON value (``"integer"`` for whole numbers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    return "object" if isinstance(value, Mapping) else type(value).__name__


def _type_kind(t: Any) -> str | None:
    """The JSON kind a type accepts (``None`` for ``Any``-like types accepting everything)."""
    origin = get_origin(t)
    if origin is Annotated:
        return _type_kind(get_args(t)[0])
    if origin is Literal:
        return json_kind(get_args(t)[0])
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    if t in simple:
        return simple[t]
    if origin in (tuple, list) or t in (tuple, list):
        return "array"
    if origin in (dict, Mapping) or t is dict or attrs.has(t):
        return "object"
    return None


def _expect(kind: str, value: Any) -> FieldError:
    got = json_kind(value)
    return FieldError(f"must be {_KIND_ARTICLE[kind]} (got {_KIND_ARTICLE.get(got, got)})")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# --- strict primitives ------------------------------------------------------------------


def _structure_str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise _expect("string", value)
    return value


def _structure_int(value: object, _: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _expect("integer", value)
    return value


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _expect("number", value)
    return float(value)


def _structure_bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise _expect("boolean", value)
    return value


def _structure_none(value: Any, _: Any) -> None:
    if value is not None:
        raise _expect("null", value)


def _structure_any(value: Any, _: Any) -> Any:
    return value


# --- hook factories ---------------------------------------------------------------------


def _requiring(kind: str, check: Callable[[Any], bool], inner: Hook) -> Hook:
    def hook(value: Any, t: Any) -> Any:
        if not check(value):
            raise _expect(kind, value)
        return inner(value, t)

    return hook


def _is_array_type(t: Any) -> bool:
    args = get_args(t)
    if get_origin(t) is list:
        return True
    return get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


def _array_factory(t: Any, conv: cattrs.Converter) -> Hook:
    if get_origin(t) is list:
        inner = list_structure_factory(t, conv)
    else:
        inner = homogenous_tuple_structure_factory(t, conv)
    return _requiring("array", lambda v: isinstance(v, list), inner)


def _is_mapping_type(t: Any) -> bool:
    return get_origin(t) in (dict, Mapping)


def _mapping_factory(t: Any, conv: cattrs.Converter) -> Hook:
    return _requiring("object", lambda v: isinstance(v, Mapping), mapping_structure_factory(t, conv))


def _attrs_factory(t: Any, conv: cattrs.Converter) -> Hook:
    return _requiring("object", lambda v: isinstance(v, Mapping), make_dict_structure_fn(t, conv))


def _is_literal(t: Any) -> bool:
    return get_origin(t) is Literal


def _literal_factory(t: Any, conv: cattrs.Converter) -> Hook:
    allowed = get_args(t)
    listing = ", ".join(str(a) for a in allowed)

    def hook(value: Any, _: Any) -> Any:
        # ``1 in (True,)`` is true in Python; compare JSON kinds as well as values.
        if not any(value == a and json_kind(value) == json_kind(a) for a in allowed):
            raise FieldError(f"must be one of {listing} (got {_short(value)})")
        return value

    return hook


def _is_annotated(t: Any) -> bool:
    return get_origin(t) is Annotated


def _annotated_factory(t: Any, conv: cattrs.Converter) -> Hook:
    base, *metadata = get_args(t)
    inner = conv.get_structure_hook(base)
    checks = [m.check for m in metadata if isinstance(m, (Bounds, Length))]

    def hook(value: Any, _: Any) -> Any:
        result = inner(value, base)
        for check in checks:
            check(result)
        return result

    return hook


def _is_union(t: Any) -> bool:
    return get_origin(t) in (typing.Union, types.UnionType)


def _union_factory(t: Any, conv: cattrs.Converter) -> Hook:
    """Dispatch on the value's JSON kind; several object types are told apart by ``type``."""
    members = get_args(t)
    by_kind: dict[str, list[Any]] = {}
    for member in members:
        kind = _type_kind(member)
        if kind is None:
            raise TypeError(f"cannot structure {t}: member {member} accepts any JSON value")
        by_kind.setdefault(kind, []).append(member)
    expected = _either([_KIND_ARTICLE[k] for k in by_kind])
    if "number" in by_kind:
        by_kind.setdefault("integer", by_kind["number"])
    hooks = {kind: _kind_hook(kinds, conv) for kind, kinds in by_kind.items()}

    def hook(value: Any, _: Any) -> Any:
        kind = json_kind(value)
        if kind not in hooks:
            raise FieldError(f"must be {expected} (got {_KIND_ARTICLE.get(kind, kind)})")
        return hooks[kind](value)

    return hook


def _kind_hook(members: list[Any], conv: cattrs.Converter) -> Callable[[Any], Any]:
    if len(members) == 1:
        only, only_hook = members[0], conv.get_structure_hook(members[0])
        return lambda value: only_hook(value, only)
    if all(attrs.has(m) for m in members):
        return _tagged_hook(members, conv)
    raise TypeError(f"cannot tell {members} apart by JSON kind")


def _tagged_hook(classes: list[type], conv: cattrs.Converter) -> Callable[[Any], Any]:
    """Several attrs classes distinguished by a ``type: Literal[...]`` field."""
    by_tag: dict[Any, type] = {}
    for cls in classes:
        tag = typing.get_type_hints(cls).get("type")  # resolves string annotations
        if get_origin(tag) is not Literal:
            raise TypeError(f"{cls.__name__} needs a `type: Literal[...]` tag to be in a union")
        by_tag.update(dict.fromkeys(get_args(tag), cls))
    tag_type = Literal[tuple(by_tag)]  # type: ignore[valid-type]
    check_tag = _literal_factory(tag_type, conv)

    def hook(value: Any) -> Any:
        try:
            tag = check_tag(value.get("type"), tag_type) if "type" in value else _missing_tag()
        except FieldError as exc:
            exc.add_note(AttributeValidationNote("Structuring the tag", "type", tag_type))
            raise ClassValidationError("While choosing a type by tag", [exc], classes[0]) from None
        return conv.structure(value, by_tag[tag])

    return hook


def _missing_tag() -> Any:
    raise FieldError("required field is missing")


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _short(value: Any) -> str:
    return shorten(repr(value), 40)


# --- the converter ----------------------------------------------------------------------


def make_converter() -> cattrs.Converter:
    """A fresh strict JSON converter (one is built at import: :data:`converter`)."""
    conv = cattrs.Converter(forbid_extra_keys=False, detailed_validation=True)
    for t, fn in [(str, _structure_str), (int, _structure_int), (float, _structure_float)]:
        conv.register_structure_hook(t, fn)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(type(None), _structure_none)
    conv.register_structure_hook(Any, _structure_any)
    conv.register_structure_hook_factory(attrs.has, lambda t: _attrs_factory(t, conv))
    conv.register_structure_hook_factory(_is_array_type, lambda t: _array_factory(t, conv))
    conv.register_structure_hook_factory(_is_mapping_type, lambda t: _mapping_factory(t, conv))
    conv.register_structure_hook_factory(_is_literal, lambda t: _literal_factory(t, conv))
    conv.register_structure_hook_factory(_is_union, lambda t: _union_factory(t, conv))
    conv.register_structure_hook_factory(_is_annotated, lambda t: _annotated_factory(t, conv))
    return conv


converter = make_converter()
"""The converter both wire adapters use. Configured once here; never re-registered elsewhere."""


def _format(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, FieldError):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field is missing"
    return format_exception(exc, type_)


def describe_error(exc: BaseException) -> tuple[str | None, str]:
    """``(param, message)`` for a structuring failure: the first error, path OpenAI-style."""
    errors = transform_error(exc, path="$", format_exception=_format)
    description, _, path = errors[0].rpartition(" @ ")
    param = path.removeprefix("$").removeprefix(".") or None
    message = f"{param}: {description}" if param else description
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return param, message


def structure(data: Any, cls: type[T], *, what: str = "request body") -> T:
    """Structure a decoded JSON value into ``cls``; any failure is an :class:`InvalidRequest`."""
    if attrs.has(cls) and not isinstance(data, Mapping):
        raise InvalidRequest(f"{what} must be a JSON object (got {json_kind(data)})")
    try:
        return converter.structure(data, cls)
    except (ClassValidationError, IterableValidationError, FieldError) as exc:
        param, message = describe_error(exc)
        raise InvalidRequest(message, param=param) from None
