"""Usage statistics since start: requests, errors and tokens per model and per API key.

Keys are never stored: each is reduced to a short, non-reversible fingerprint (a keyed
BLAKE2b digest with a per-process random salt, so the same key maps to the same fingerprint
within one run and nothing can be looked up across runs or processes).
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from typing import Any

import attrs

__all__ = ["UsageLedger", "key_fingerprint"]

_SALT = os.urandom(16)


def key_fingerprint(key: str | None) -> str:
    """``key-1a2b3c4d`` for a key, ``anonymous`` without one."""
    if not key:
        return "anonymous"
    return "key-" + hashlib.blake2b(key.encode(), key=_SALT, digest_size=4).hexdigest()


@attrs.define
class _Tally:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


class UsageLedger:
    """Counts per model and per key fingerprint; :meth:`snapshot` is JSON-ready."""

    def __init__(self) -> None:
        self._by_model: defaultdict[str, _Tally] = defaultdict(_Tally)
        self._by_key: defaultdict[str, _Tally] = defaultdict(_Tally)

    def record(
        self, *, model: str, key: str | None, ok: bool, input_tokens: int = 0, output_tokens: int = 0
    ) -> None:
        for tally in (self._by_model[model], self._by_key[key_fingerprint(key)]):
            tally.requests += 1
            tally.errors += 0 if ok else 1
            tally.input_tokens += input_tokens
            tally.output_tokens += output_tokens

    def observe_turn(self, report: Any) -> None:
        """Record one finished request (a ``backend.gateway.TurnReport``)."""
        self.record(model=report.model, key=report.api_key, ok=report.ok,
                    input_tokens=report.input_tokens, output_tokens=report.output_tokens)

    def snapshot(self) -> dict[str, Any]:
        return {
            "models": {m: t.as_dict() for m, t in sorted(self._by_model.items())},
            "keys": {k: t.as_dict() for k, t in sorted(self._by_key.items())},
        }
