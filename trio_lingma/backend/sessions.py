"""Upstream session reuse: an LRU + TTL cache from conversation prefix to upstream session.

Theory of operation
-------------------
Lingma keeps a conversation's history per ``sessionId`` and takes follow-up turns with
``isReply: true`` (lingma-protocol.md §3A "Multi-turn"). OpenAI/Anthropic clients resend the
whole conversation with every request, so the gateway recognises a follow-up by its *prefix*:
the model, the system text, the tool definitions and every message before the newest user
turn (:func:`~trio_lingma.protocol.conversation.split_new_turn`), normalised and hashed
(:func:`prefix_key`).

An entry maps that key to the upstream session holding exactly that history (and to the
instance *life* that owns it: a restarted process no longer has it). It is written only after a
response finished successfully, under the key of the conversation *including* that answer
(:func:`answer_key`), so the client's next request finds it.

A request that hits an entry *checks it out*: the entry leaves the cache while the turn runs.
A second concurrent request with the same prefix therefore misses and starts its own fresh
session with the flattened history; two turns never share one upstream session at a time.

This module is pure: the clock is passed in, and evicted or expired entries are *returned* so
the caller deletes their upstream sessions (``chat/deleteSessionById``) with real I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import attrs

from ..protocol.conversation import ChatRequest, Message, ToolCall, split_new_turn, tools_json
from ..protocol.jsonutil import compact_json

__all__ = ["CacheStats", "SessionCache", "SessionEntry", "answer_key", "prefix_key"]


@attrs.frozen(kw_only=True)
class SessionEntry:
    """An idle upstream session that holds the conversation hashed to ``key``."""

    key: str
    session_id: str
    instance: int
    life: int
    turns: int
    expires_at: float


@attrs.frozen(kw_only=True)
class CacheStats:
    size: int
    capacity: int
    hits: int
    misses: int
    evictions: int
    expirations: int


def _message_json(msg: Message) -> list[Any]:
    images = [[i.media_type, i.url, i.data] for i in msg.images]
    calls = [[c.id, c.name, _arguments(c.arguments)] for c in msg.tool_calls]
    return [msg.role, msg.text.strip(), images, calls, msg.tool_call_id, msg.is_error]


def _arguments(arguments: str) -> Any:
    """Tool-call arguments as a value: clients re-serialise the JSON we sent them freely."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _digest(model_key: str, request: ChatRequest, messages: Iterable[Message]) -> str:
    doc = [model_key, request.system.strip(), tools_json(request.tools),
           [_message_json(m) for m in messages]]
    raw = compact_json(doc, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()


def prefix_key(model_key: str, request: ChatRequest) -> str | None:
    """The key of the history a reused session must hold; None for a first turn."""
    history, _ = split_new_turn(request.messages)
    return _digest(model_key, request, history) if history else None


def answer_key(model_key: str, request: ChatRequest, answer: str,
               calls: tuple[ToolCall, ...] = ()) -> str:
    """The key of the conversation after ``answer`` (and the client-tool ``calls`` it made):
    what the client's next request sends as history."""
    after = (*request.messages, Message(role="assistant", text=answer, tool_calls=calls))
    return _digest(model_key, request, after)


class SessionCache:
    """LRU + TTL; ``capacity == 0`` disables reuse. Every method takes the current time."""

    def __init__(self, *, capacity: int, ttl: float) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self._entries: OrderedDict[str, SessionEntry] = OrderedDict()
        self.hits = self.misses = self.evictions = self.expirations = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<SessionCache {len(self)}/{self.capacity} hits={self.hits} misses={self.misses}>"

    def statistics(self) -> CacheStats:
        return CacheStats(size=len(self), capacity=self.capacity, hits=self.hits, misses=self.misses,
                          evictions=self.evictions, expirations=self.expirations)

    def checkout(self, key: str | None, now: float) -> tuple[SessionEntry | None, list[SessionEntry]]:
        """Take the entry for ``key`` out of the cache (it is in use now), plus expired entries."""
        expired = self.expire(now)
        entry = self._entries.pop(key, None) if key is not None else None
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry, expired

    def put(self, *, key: str, session_id: str, instance: int, life: int, turns: int,
            now: float) -> list[SessionEntry]:
        """Store a session that finished a turn successfully; returns entries to delete."""
        entry = SessionEntry(key=key, session_id=session_id, instance=instance, life=life,
                             turns=turns, expires_at=now + self.ttl)
        return self.restore(entry, now)

    def restore(self, entry: SessionEntry, now: float) -> list[SessionEntry]:
        """Give back a checked-out entry that was not used; returns entries to delete."""
        if self.capacity <= 0 or entry.expires_at <= now:
            return [entry]
        doomed = self.expire(now)
        replaced = self._entries.pop(entry.key, None)
        if replaced is not None:
            doomed.append(replaced)
        self._entries[entry.key] = entry
        while len(self._entries) > self.capacity:
            doomed.append(self._entries.popitem(last=False)[1])
            self.evictions += 1
        return doomed

    def expire(self, now: float) -> list[SessionEntry]:
        """Remove and return every entry whose TTL has passed (``expires_at <= now``)."""
        gone = [e for e in self._entries.values() if e.expires_at <= now]
        for entry in gone:
            del self._entries[entry.key]
        self.expirations += len(gone)
        return gone

    def next_expiry(self) -> float | None:
        return min((e.expires_at for e in self._entries.values()), default=None)

    def drain(self) -> list[SessionEntry]:
        """Remove and return every entry (shutdown)."""
        out = list(self._entries.values())
        self._entries.clear()
        return out
