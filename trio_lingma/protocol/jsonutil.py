"""The one compact JSON writer: no spaces, non-ASCII as is (what Lingma and both wire APIs send)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["compact_json"]


def compact_json(value: Any, *, sort_keys: bool = False) -> str:
    """``value`` as JSON without whitespace; ``sort_keys`` for a canonical form (keys, counts)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
