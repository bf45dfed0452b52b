"""The store of finished Responses API responses (pure): ``previous_response_id``, ``GET``,
``DELETE`` and ``GET .../input_items``.

Bounded (``RESPONSES_STORE_SIZE``, least recently used out) and in memory: a restart forgets
every response, as a client of ``store: true`` must expect from any server that may lose state.
Each entry keeps the response object, the conversation it ended with (input + output as neutral
messages: what a continuation prepends) and its input items as the client sent them (with ids).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Any

import attrs

from .conversation import Message
from .responses_request import ResponsesRequest, items_to_messages

__all__ = ["ResponseStore", "StoredResponse", "input_items_page"]

Json = dict[str, Any]

_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}


@attrs.frozen(kw_only=True)
class StoredResponse:
    """A finished response: its object (for GET), the conversation it ended with, its input."""

    response: Json
    conversation: tuple[Message, ...]
    input_items: tuple[Json, ...] = ()


class ResponseStore:
    """Finished responses by id, at most ``capacity`` (least recently used out)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<ResponseStore {len(self)}/{self.capacity}>"

    def keep(self, request: ResponsesRequest, response: Json) -> None:
        """Remember ``response`` unless the request said ``store: false`` or it failed."""
        if self.capacity == 0 or request.wire.store is False or response["status"] == "failed":
            return
        conversation = (*request.messages, *items_to_messages(response["output"]))
        self._entries[response["id"]] = StoredResponse(response=response, conversation=conversation,
                                                       input_items=_input_items(request.wire.input))
        self._entries.move_to_end(response["id"])
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def get(self, response_id: str) -> StoredResponse | None:
        found = self._entries.get(response_id)
        if found is not None:
            self._entries.move_to_end(response_id)
        return found

    def conversation(self, response_id: str) -> tuple[Message, ...] | None:
        """What ``previous_response_id`` continues (None: unknown id)."""
        found = self.get(response_id)
        return found.conversation if found is not None else None

    def delete(self, response_id: str) -> bool:
        return self._entries.pop(response_id, None) is not None


def _input_items(raw: str | tuple[Json, ...]) -> tuple[Json, ...]:
    """The input as items, each with an ``id`` (a string input is one user message)."""
    if isinstance(raw, str):
        raw = ({"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]},)
    out = []
    for item in raw:
        kind = item.get("type", "message")
        out.append({"id": f"{_ID_PREFIX.get(kind, 'item')}_{secrets.token_hex(24)}", **item, "type": kind})
    return tuple(out)


def input_items_page(items: tuple[Json, ...], *, order: str = "desc", limit: int = 20,
                     after: str | None = None) -> Json:
    """One page of a response's input items, OpenAI's list shape (newest first by default)."""
    ordered = list(items) if order == "asc" else list(reversed(items))
    if after is not None:
        ids = [item["id"] for item in ordered]
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    page = ordered[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(ordered) > limit}
