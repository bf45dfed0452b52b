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

* A field named ``type`` (or, lacking one, ``role``) holding a ``Literal`` is a *tag*: a
  wrong value is an :class:`UnknownTag`, in a union or not. In a union, the class whose tag
  has a default is chosen when the tag is missing (Anthropic's type-less custom tools), and a
  class whose tag is a plain ``str`` takes any other value (tools the gateway ignores).

Every failure is collected by cattrs' detailed validation as a :class:`FieldError` subclass
that carries the facts (:class:`Missing`, :class:`WrongKind`, :class:`NotOneOf`, ...), and
:func:`problems` flattens them into :class:`Problem` values (a path tuple and the error). Each
wire API words them its own way in one *explainer* passed to :func:`structure`: the default,
:func:`explain_openai`, names the path as OpenAI does (``messages[2].role: must be one of
system, user``, ``param="messages[2].role"``); Anthropic's uses pydantic's wording and dotted
paths (``messages.2.role: Input should be 'user' or 'assistant'``). ``str()`` of every
FieldError is the OpenAI wording. An adapter's own checks after structuring pass a
:class:`Problem` to the same explainer (``explain([Problem(path, error)])``; Anthropic's
``anthropic_wire.fail``) for the same treatment.
"""

from __future__ import annotations

import re
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

from ..errors import InvalidRequest
from .field_errors import (
    FieldError,
    Missing,
    NoMatch,
    NotOneOf,
    OutOfBounds,
    Path,
    Problem,
    UnknownTag,
    WrongKind,
    WrongLength,
    json_kind,
    problems,
)

__all__ = [
    "Bounds",
    "Explain",
    "FieldError",
    "Integral",
    "Length",
    "Pattern",
    "Problem",
    "converter",
    "explain_openai",
    "json_kind",
    "make_converter",
    "structure",
]

T = TypeVar("T")
Hook = Callable[[Any, Any], Any]
Explain = Callable[[list[Problem]], InvalidRequest]
"""A wire API's one error formatter: the problems found (at least one) -> its 400."""


@attrs.frozen
class Bounds:
    """``Annotated`` metadata: an inclusive numeric range (either end may be open)."""

    lo: float | None = None
    hi: float | None = None

    def check(self, value: Any) -> None:
        if (self.lo is not None and not value >= self.lo) or (self.hi is not None and not value <= self.hi):
            raise OutOfBounds(self.lo, self.hi, value)


@attrs.frozen
class Length:
    """``Annotated`` metadata: how many items an array (or characters a string) may have."""

    lo: int = 0
    hi: int | None = None

    def check(self, value: Any) -> None:
        if len(value) < self.lo or (self.hi is not None and len(value) > self.hi):
            raise WrongLength(self.lo, self.hi, value)


@attrs.frozen
class Pattern:
    """``Annotated`` metadata: a string must match ``regex`` (anywhere, as pydantic's ``pattern``)."""

    regex: str

    def check(self, value: str) -> None:
        if re.search(self.regex, value) is None:
            raise NoMatch(self.regex)


@attrs.frozen
class Integral:
    """``Annotated[int, Integral()]``: a float with no fraction (``1024.0``) is taken as an int,
    as pydantic-based APIs (Anthropic's) take it."""


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


# --- strict primitives ------------------------------------------------------------------


def _structure_str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise WrongKind(("string",), value)
    return value


def _structure_int(value: object, _: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WrongKind(("integer",), value)
    return value


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WrongKind(("number",), value)
    return float(value)


def _structure_bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise WrongKind(("boolean",), value)
    return value


def _structure_none(value: Any, _: Any) -> None:
    if value is not None:
        raise WrongKind(("null",), value)


def _structure_any(value: Any, _: Any) -> Any:
    return value


# --- hook factories ---------------------------------------------------------------------


def _requiring(kind: str, check: Callable[[Any], bool], inner: Hook) -> Hook:
    def hook(value: Any, t: Any) -> Any:
        if not check(value):
            raise WrongKind((kind,), value)
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
    inner: Hook = make_dict_structure_fn(t, conv)
    tags = _tags(t)
    if tags is not None:
        inner = _checking_tag(t, tags, inner)
    return _requiring("object", lambda v: isinstance(v, Mapping), inner)


_TAG_FIELDS = ("type", "role")


def _tag_field(cls: type) -> str | None:
    """The field that tells ``cls`` apart in a union: ``type``, else ``role`` (messages)."""
    hints = typing.get_type_hints(cls)  # resolves string annotations
    return next((f for f in _TAG_FIELDS if f in hints), None)


def _tags(cls: type) -> tuple[str, tuple[Any, ...]] | None:
    """``(field, values)`` of ``cls``'s ``Literal`` tag, or ``None`` when it has none."""
    field = _tag_field(cls)
    tag = typing.get_type_hints(cls).get(field) if field else None
    return (field, get_args(tag)) if field and get_origin(tag) is Literal else None


def _find(value: Any, allowed: typing.Iterable[Any]) -> Any:
    """The constant equal to ``value``; ``1 == True`` in Python, so JSON kinds must agree too."""
    for a in allowed:
        if value == a and json_kind(value) == json_kind(a):
            return a
    raise LookupError(value)


def _tag_error(exc: FieldError, field: str, cls: type) -> ClassValidationError:
    exc.add_note(AttributeValidationNote("Structuring the tag", field, str))
    return ClassValidationError("While choosing a type by tag", [exc], cls)


def _checking_tag(cls: type, tags: tuple[str, tuple[Any, ...]], inner: Hook) -> Hook:
    field, values = tags

    def hook(value: Any, t: Any) -> Any:
        if field in value:
            try:
                _find(value[field], values)
            except LookupError:
                raise _tag_error(UnknownTag(values, value[field], field), field, cls) from None
        return inner(value, t)

    return hook


def _is_literal(t: Any) -> bool:
    return get_origin(t) is Literal


def _literal_factory(t: Any, conv: cattrs.Converter) -> Hook:
    allowed = get_args(t)

    def hook(value: Any, _: Any) -> Any:
        try:
            _find(value, allowed)
        except LookupError:
            raise NotOneOf(allowed, value) from None
        return value

    return hook


def _is_annotated(t: Any) -> bool:
    return get_origin(t) is Annotated


def _annotated_factory(t: Any, conv: cattrs.Converter) -> Hook:
    base, *metadata = get_args(t)
    inner = conv.get_structure_hook(base)
    checks = [m.check for m in metadata if isinstance(m, (Bounds, Length, Pattern))]
    integral = any(isinstance(m, Integral) for m in metadata)

    def hook(value: Any, _: Any) -> Any:
        if integral and isinstance(value, float) and value.is_integer():
            value = int(value)
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
    expected = tuple(by_kind)
    if "number" in by_kind:
        by_kind.setdefault("integer", by_kind["number"])
    hooks = {kind: _kind_hook(kinds, conv) for kind, kinds in by_kind.items()}

    def hook(value: Any, _: Any) -> Any:
        kind = json_kind(value)
        if kind not in hooks:
            raise WrongKind(expected, value)
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
    """Several attrs classes told apart by their tag (see the module docstring)."""
    field = _tag_field(classes[0]) or "type"
    by_tag: dict[Any, type] = {}
    default: type | None = None  # chosen when the tag is missing
    fallback: type | None = None  # chosen for any other tag
    for cls in classes:
        tags = _tags(cls)
        if tags is None and typing.get_type_hints(cls).get(field) is str:
            fallback = cls
            continue
        if tags is None or tags[0] != field:
            raise TypeError(f"{cls.__name__} needs a `{field}: Literal[...]` tag to be in a union")
        by_tag.update(dict.fromkeys(tags[1], cls))
        if attrs.fields_dict(cls)[field].default is not attrs.NOTHING:
            default = cls

    def hook(value: Any) -> Any:
        if field not in value:
            if default is None:
                raise _tag_error(Missing(), field, classes[0])
            return conv.structure(value, default)
        try:
            cls = by_tag[_find(value[field], by_tag)]
        except LookupError:
            if fallback is None:
                raise _tag_error(UnknownTag(tuple(by_tag), value[field], field), field, classes[0]) from None
            cls = fallback
        return conv.structure(value, cls)

    return hook


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


def explain_openai(found: list[Problem]) -> InvalidRequest:
    """OpenAI's wording: ``messages[2].role: must be one of ...``, param the same path;
    further problems are counted, not listed."""
    first = found[0]
    param = _openai_path(first.path) or None
    if param is None and isinstance(first.error, WrongKind) and first.error.expected == ("object",):
        message = f"request body must be a JSON object (got {first.error.got})"
    else:
        message = f"{param}: {first.error}" if param else str(first.error)
    if len(found) > 1:
        message += f" (and {len(found) - 1} more error{'s' if len(found) > 2 else ''})"
    return InvalidRequest(message, param=param)


def _openai_path(path: Path) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.removeprefix(".")


def structure(data: Any, cls: type[T], *, explain: Explain = explain_openai) -> T:
    """Structure a decoded JSON value into ``cls``; any failure is the :class:`InvalidRequest`
    that ``explain`` (the wire API's formatter) makes of the problems found."""
    if attrs.has(cls) and not isinstance(data, Mapping):
        raise explain([Problem((), WrongKind(("object",), data))])
    try:
        return converter.structure(data, cls)
    except (ClassValidationError, IterableValidationError, FieldError) as exc:
        raise explain(problems(exc)) from None
