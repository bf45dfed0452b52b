"""``MODEL_ALIASES``: model names clients ask for -> models of the Lingma catalogue (pure).

Agent clients name their vendor's models: Claude Code asks for ``claude-opus-…`` for the main
loop and ``claude-haiku-…`` for small jobs unless ``ANTHROPIC_MODEL`` etc. are set; Codex and
OpenAI-based tools ask for ``gpt-…``. ``MODEL_ALIASES=claude-*=qwen3-coder,gpt-*=qwen3-coder``
serves them without configuring each client.

Rules (both wire APIs, on the shared core: :meth:`~trio_lingma.backend.gateway.Gateway.resolve_model`):

* entries are ``pattern=model``, comma-separated; patterns are :mod:`fnmatch` globs (``*``,
  ``?``, ``[...]``) matched case-insensitively against the whole name (a ``:agent``/``:chat``
  mode suffix is split off first and still applies);
* a name that is a model of the catalogue is never aliased: exact model ids win;
* otherwise the first matching entry wins; its target must be in the catalogue (else a 404
  naming both names: the catalogue comes from the runtime, so this is checked per request).

``/v1/models`` lists the catalogue only, unchanged. Responses carry the model name the client
asked for (``model`` in the completion / message), as OpenAI and Anthropic echo the requested
model: clients key their own bookkeeping on it (Claude Code's per-model usage and context-window
lookups, SDK helpers comparing it with the request). Metrics and usage count the served model.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import attrs

__all__ = ["Alias", "match_alias", "parse_aliases"]


@attrs.frozen
class Alias:
    """One ``pattern=target`` entry (pattern already lower-cased)."""

    pattern: str
    target: str


def parse_aliases(entries: Iterable[str]) -> tuple[Alias, ...]:
    """The aliases of ``MODEL_ALIASES`` entries; ``ValueError`` names an entry that is not
    ``pattern=model`` with both sides non-empty."""
    aliases = []
    for entry in entries:
        pattern, sep, target = (part.strip() for part in entry.partition("="))
        if not (sep and pattern and target):
            raise ValueError(f"{entry!r} is not pattern=model")
        aliases.append(Alias(pattern=pattern.lower(), target=target))
    return tuple(aliases)


def match_alias(name: str, aliases: Iterable[Alias]) -> Alias | None:
    """The first alias whose pattern matches ``name`` (case-insensitively), if any."""
    lowered = name.lower()
    return next((a for a in aliases if fnmatch.fnmatchcase(lowered, a.pattern)), None)
