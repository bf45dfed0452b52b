"""What can be wrong with a field of a JSON request body, as facts each wire API words its own way.

The converter (:mod:`.convert`) raises these while structuring; adapters raise them from their
own checks. ``str()`` of each is OpenAI's wording (``must be one of system, user (got 'x')``);
Anthropic's explainer reads the attributes and words them as its pydantic-based API does
(``Input should be 'user' or 'assistant'``). :func:`problems` flattens cattrs' nested
validation errors into :class:`Problem` values: the path as a tuple (names and indices) and the
error, in the order the fields were structured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from cattrs.errors import AttributeValidationNote, ClassValidationError, IterableValidationError
from cattrs.v import format_exception

from ..errors import shorten

__all__ = [
    "FieldError",
    "Missing",
    "NoMatch",
    "NotOneOf",
    "OutOfBounds",
    "Path",
    "Problem",
    "UnknownTag",
    "WrongKind",
    "WrongLength",
    "either",
    "json_kind",
    "kind_article",
    "number_text",
    "problems",
]

Path = tuple[str | int, ...]


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


_KIND_ARTICLE = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def kind_article(kind: str) -> str:
    """``"an integer"`` for ``"integer"`` (unknown kinds as they are)."""
    return _KIND_ARTICLE.get(kind, kind)


def either(words: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _short(value: Any) -> str:
    return shorten(repr(value), 40)


def number_text(x: float) -> str:
    """``1`` for 1.0, ``0.5`` for 0.5: how bounds are shown."""
    return str(int(x)) if float(x).is_integer() else str(x)


class FieldError(ValueError):
    """A value is invalid; ``str()`` is shown to an OpenAI client after the field path."""


class Missing(FieldError):
    """A required field (or a union's ``type`` tag) is absent."""

    def __init__(self) -> None:
        super().__init__("required field is missing")


class WrongKind(FieldError):
    """The value is not of a JSON kind the field accepts (``expected``, in order)."""

    def __init__(self, expected: tuple[str, ...], value: Any) -> None:
        self.expected = expected
        self.got = json_kind(value)
        wanted = either([kind_article(k) for k in expected])
        super().__init__(f"must be {wanted} (got {kind_article(self.got)})")


class NotOneOf(FieldError):
    """The value is none of the ``allowed`` constants."""

    def __init__(self, allowed: tuple[Any, ...], value: Any) -> None:
        self.allowed = allowed
        self.value = value
        listing = ", ".join(str(a) for a in allowed)
        super().__init__(f"must be one of {listing} (got {_short(value)})")


class UnknownTag(NotOneOf):
    """A tag (the ``field`` telling union members apart) names none of the known variants."""

    def __init__(self, allowed: tuple[Any, ...], value: Any, field: str = "type") -> None:
        super().__init__(allowed, value)
        self.field = field


class OutOfBounds(FieldError):
    """A number outside an inclusive range; ``too_low`` tells which end was crossed."""

    def __init__(self, lo: float | None, hi: float | None, value: float) -> None:
        self.lo, self.hi, self.value = lo, hi, value
        self.too_low = lo is not None and not value >= lo
        got = f" (got {_short(value)})"
        if lo is not None and hi is not None:
            message = f"must be between {number_text(lo)} and {number_text(hi)}{got}"
        elif lo is not None and self.too_low:
            message = f"must be at least {number_text(lo)}{got}"
        else:
            message = f"must be at most {number_text(hi if hi is not None else value)}{got}"
        super().__init__(message)


class WrongLength(FieldError):
    """An array (or string) with too few or too many items (characters)."""

    def __init__(self, lo: int, hi: int | None, value: Any) -> None:
        self.lo, self.hi, self.count = lo, hi, len(value)
        self.what = "characters" if isinstance(value, str) else "items"
        self.too_short = self.count < lo
        if self.too_short:
            message = "must not be empty" if lo == 1 else f"must have at least {lo} {self.what}"
        else:
            message = f"must have at most {hi} {self.what}"
        super().__init__(message)


class NoMatch(FieldError):
    """A string that does not match a regular expression."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        super().__init__(f"must match the pattern {pattern}")


@attrs.frozen
class Problem:
    """One invalid field: where (names and array indices from the body's root) and what."""

    path: Path
    error: FieldError


def problems(exc: BaseException, path: Path = ()) -> list[Problem]:
    """Every failure inside a (detailed) cattrs validation error, depth first, in field order."""
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        with_notes, without = exc.group_exceptions()
        found: list[Problem] = []
        for inner, note in with_notes:
            key = note.name if isinstance(note, AttributeValidationNote) else note.index
            found += problems(inner, (*path, key))
        for inner in without:
            found += problems(inner, path)
        return found
    return [Problem(path, _field_error(exc))]


def _field_error(exc: BaseException) -> FieldError:
    if isinstance(exc, FieldError):
        return exc
    if isinstance(exc, KeyError):  # cattrs: a required attribute is absent
        return Missing()
    return FieldError(format_exception(exc, None))
