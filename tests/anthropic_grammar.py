"""A strict checker of Anthropic Messages stream grammar, for every test that sees a stream.

Grammar (Anthropic's streaming reference)::

    stream  := message_start ping* (block ping*)* ( message_delta ping* message_stop
                                                  | error )
    block   := content_block_start (content_block_delta | ping)* content_block_stop

plus: each event's name equals its payload's ``type``; block indices are 0, 1, 2, ...; a delta
belongs to the open block and has a type that fits it; a thinking block gets a
``signature_delta`` as its last delta; a tool_use block's ``partial_json`` pieces concatenate
to a JSON object (unless an ``error`` event comes right after the block, which is how a
call cut off by an upstream failure ends); no block opens for nothing (no empty text/thinking blocks, no empty deltas);
an ``error`` event ends the stream and comes with no block left open.

Use :func:`check_stream` on ``(event name, payload)`` pairs (parse SSE first).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["BLOCK_DELTAS", "STOP_REASONS", "check_stream"]

#: Which delta types may appear in which block type (extend when new blocks are emitted).
BLOCK_DELTAS: dict[str, frozenset[str]] = {
    "text": frozenset({"text_delta", "citations_delta"}),
    "thinking": frozenset({"thinking_delta", "signature_delta"}),
    "redacted_thinking": frozenset(),
    "tool_use": frozenset({"input_json_delta"}),
    "mcp_tool_use": frozenset({"input_json_delta"}),
    "mcp_tool_result": frozenset(),
}

STOP_REASONS = frozenset(
    {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}
)

_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "billing_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "timeout_error",
        "api_error",
        "overloaded_error",
    }
)

# Which block types must carry at least one delta (an empty one was "opened for nothing").
_NEEDS_CONTENT = {"text": "text_delta", "thinking": "thinking_delta"}


def check_stream(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Raise AssertionError, naming the offending event, unless ``events`` is a valid stream."""
    checker = _Checker()
    for position, (name, payload) in enumerate(events):
        checker.position = position
        checker.check(name, payload)
    checker.position = len(events)
    checker.at_end()


class _Block:
    def __init__(self, index: int, block: dict[str, Any]) -> None:
        self.index = index
        self.type: str = block["type"]
        self.deltas: list[str] = []
        self.json = ""


class _Checker:
    def __init__(self) -> None:
        self.position = 0
        self.phase = "before_start"  # -> blocks -> after_delta -> ended
        self.next_index = 0
        self.open: _Block | None = None
        self.cut_tool: tuple[_Block, str] | None = None  # a tool_use block with unparseable input

    def fail(self, message: str) -> None:
        raise AssertionError(f"event #{self.position}: {message}")

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            self.fail(message)

    def check(self, name: str, payload: dict[str, Any]) -> None:
        self.expect(self.phase != "ended", f"{name!r} after the stream ended")
        self.expect(isinstance(payload, dict), f"{name!r} payload is not an object: {payload!r}")
        self.expect(payload.get("type") == name, f"event name {name!r} != payload type {payload.get('type')!r}")
        if self.phase == "before_start":
            self.expect(name == "message_start", f"first event must be 'message_start', got {name!r}")
        if self.cut_tool is not None and name not in ("error", "ping"):
            self.fail(self.cut_tool[1])
        handler = getattr(self, f"on_{name}", None)
        self.expect(handler is not None, f"unknown event {name!r}")
        handler(payload)

    # -- message envelope

    def on_message_start(self, payload: dict[str, Any]) -> None:
        self.expect(self.phase == "before_start", "a second 'message_start'")
        message = payload.get("message", {})
        self.expect(message.get("type") == "message", f"message_start.message.type: {message.get('type')!r}")
        self.expect(message.get("role") == "assistant", f"message_start.message.role: {message.get('role')!r}")
        self.expect(message.get("content") == [], "message_start.message.content must be []")
        self.expect(message.get("stop_reason") is None, "message_start.message.stop_reason must be null")
        usage = message.get("usage", {})
        self.expect(isinstance(usage.get("input_tokens"), int), f"message_start usage lacks input_tokens: {usage!r}")
        self.expect(isinstance(usage.get("output_tokens"), int), f"message_start usage lacks output_tokens: {usage!r}")
        self.phase = "blocks"

    def on_ping(self, payload: dict[str, Any]) -> None:
        pass  # allowed anywhere after message_start (the phase check rejects it before)

    def on_message_delta(self, payload: dict[str, Any]) -> None:
        self.expect(self.phase == "blocks", "'message_delta' twice")
        self.expect_no_open_block("'message_delta'")
        delta = payload.get("delta", {})
        reason = delta.get("stop_reason")
        self.expect(reason in STOP_REASONS, f"message_delta.delta.stop_reason: {reason!r}")
        sequence = delta.get("stop_sequence")
        self.expect((reason == "stop_sequence") == isinstance(sequence, str),
                    f"stop_sequence {sequence!r} does not fit stop_reason {reason!r}")
        output = payload.get("usage", {}).get("output_tokens")
        self.expect(isinstance(output, int) and output >= 0, f"message_delta.usage.output_tokens: {output!r}")
        self.phase = "after_delta"

    def on_message_stop(self, payload: dict[str, Any]) -> None:
        self.expect(self.phase == "after_delta", "'message_stop' without a 'message_delta' before it")
        self.phase = "ended"

    def on_error(self, payload: dict[str, Any]) -> None:
        self.expect_no_open_block("'error'")
        self.cut_tool = None
        error = payload.get("error", {})
        self.expect(error.get("type") in _ERROR_TYPES, f"error.type: {error.get('type')!r}")
        self.expect(isinstance(error.get("message"), str), f"error.message: {error.get('message')!r}")
        self.phase = "ended"

    # -- content blocks

    def on_content_block_start(self, payload: dict[str, Any]) -> None:
        self.expect(self.phase == "blocks", "'content_block_start' after 'message_delta'")
        self.expect(self.open is None, f"block {payload.get('index')} starts while block "
                    f"{self.open.index if self.open else None} is still open")
        index = payload.get("index")
        self.expect(index == self.next_index, f"block index {index!r}, expected {self.next_index}")
        block = payload.get("content_block", {})
        self.expect(block.get("type") in BLOCK_DELTAS, f"unknown content block type {block.get('type')!r}")
        self.check_empty_start(block)
        self.open = _Block(self.next_index, block)
        self.next_index += 1

    def check_empty_start(self, block: dict[str, Any]) -> None:
        kind = block["type"]
        if kind == "text":
            self.expect(block.get("text") == "", f"text block must start empty: {block!r}")
        elif kind == "thinking":
            self.expect(block.get("thinking") == "", f"thinking block must start empty: {block!r}")
        elif kind == "tool_use":
            self.expect(block.get("input") == {}, f"tool_use block must start with input {{}}: {block!r}")
            for key in ("id", "name"):
                self.expect(isinstance(block.get(key), str) and block[key], f"tool_use block lacks {key}: {block!r}")

    def on_content_block_delta(self, payload: dict[str, Any]) -> None:
        block = self.require_open(payload, "'content_block_delta'")
        delta = payload.get("delta", {})
        kind = delta.get("type")
        self.expect(kind in BLOCK_DELTAS[block.type], f"{kind!r} inside a {block.type!r} block")
        self.expect("signature_delta" not in block.deltas, f"{kind!r} after the thinking block's signature_delta")
        field = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature",
                 "input_json_delta": "partial_json"}.get(kind)
        if field is not None:
            value = delta.get(field)
            self.expect(isinstance(value, str), f"{kind}.{field} is not a string: {value!r}")
            self.expect(value != "" or kind == "input_json_delta", f"empty {kind}")
        if kind == "input_json_delta":
            block.json += delta["partial_json"]
        block.deltas.append(kind)

    def on_content_block_stop(self, payload: dict[str, Any]) -> None:
        block = self.require_open(payload, "'content_block_stop'")
        needed = _NEEDS_CONTENT.get(block.type)
        self.expect(needed is None or needed in block.deltas,
                    f"{block.type} block {block.index} was opened for nothing (no {needed})")
        if block.type == "thinking":
            self.expect(block.deltas[-1:] == ["signature_delta"],
                        f"thinking block {block.index} stops without a final signature_delta")
        if block.type == "tool_use" and block.json:
            self.check_tool_json(block)
        self.open = None

    def check_tool_json(self, block: _Block) -> None:
        """Input that is not a JSON object is only allowed if an ``error`` event follows."""
        try:
            value = json.loads(block.json)
        except ValueError as exc:
            problem = f"partial_json does not parse ({exc})"
        else:
            problem = "" if isinstance(value, dict) else "input is not a JSON object"
        if problem:
            self.cut_tool = (block, f"tool_use block {block.index}: {problem}: {block.json!r}")

    # -- helpers

    def require_open(self, payload: dict[str, Any], what: str) -> _Block:
        self.expect(self.open is not None, f"{what} for block {payload.get('index')!r}, but no block is open")
        assert self.open is not None
        self.expect(payload.get("index") == self.open.index,
                    f"{what} for block {payload.get('index')!r}, but the open block is {self.open.index}")
        return self.open

    def expect_no_open_block(self, what: str) -> None:
        if self.open is not None:
            self.fail(f"{what} while {self.open.type} block {self.open.index} is still open")

    def at_end(self) -> None:
        self.expect(self.phase != "before_start", "empty stream (no 'message_start')")
        if self.cut_tool is not None:
            self.fail(self.cut_tool[1])
        self.expect(self.phase == "ended", "stream ends without 'message_stop' or 'error'")
