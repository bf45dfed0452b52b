"""The session cache (pure, clock passed in): prefix keys, LRU order, TTL at exact times."""

from __future__ import annotations

import pytest

from trio_lingma.backend.sessions import SessionCache, answer_key, prefix_key
from trio_lingma.protocol.conversation import ChatRequest, Message


def chat(*texts: str, system: str = "", model: str = "m") -> ChatRequest:
    roles = ["user", "assistant"]
    messages = tuple(Message(role=roles[i % 2], text=t) for i, t in enumerate(texts))  # type: ignore[misc]
    return ChatRequest(model=model, messages=messages, system=system)


def put(cache: SessionCache, key: str, now: float, sid: str | None = None) -> list:
    return cache.put(key=key, session_id=sid or f"s-{key}", instance=0, life=1, turns=1, now=now)


def test_first_turn_has_no_prefix() -> None:
    assert prefix_key("k", chat("hi")) is None


def test_answer_key_is_the_next_requests_prefix() -> None:
    first = chat("hi", system="sys")
    follow_up = chat("hi", "Echo: hi", "more", system="sys")
    assert answer_key("k", first, "Echo: hi") == prefix_key("k", follow_up)
    # whitespace around texts is normalised away
    assert answer_key("k", first, "Echo: hi\n") == prefix_key("k", follow_up)


@pytest.mark.parametrize("other", [
    chat("hi", "Echo: hi", "more", system="other"),   # system differs
    chat("hi", "Echo: HI", "more", system="sys"),     # the answer differs
    chat("hey", "Echo: hi", "more", system="sys"),    # an earlier turn differs
])
def test_prefix_depends_on_every_part(other: ChatRequest) -> None:
    assert answer_key("k", chat("hi", system="sys"), "Echo: hi") != prefix_key("k", other)


def test_prefix_depends_on_the_model() -> None:
    request = chat("hi", "Echo: hi", "more")
    assert prefix_key("a", request) != prefix_key("b", request)


def test_checkout_removes_the_entry_and_counts() -> None:
    cache = SessionCache(capacity=4, ttl=10)
    put(cache, "a", now=0)
    entry, expired = cache.checkout("a", now=1)
    assert entry is not None and entry.session_id == "s-a" and expired == []
    # checked out: a concurrent request with the same prefix misses
    assert cache.checkout("a", now=1) == (None, [])
    stats = cache.statistics()
    assert (stats.hits, stats.misses, stats.size) == (1, 1, 0)


def test_lru_eviction_order() -> None:
    cache = SessionCache(capacity=3, ttl=100)
    for i, key in enumerate("abc"):
        assert put(cache, key, now=i) == []
    entry, _ = cache.checkout("a", now=3)  # a is used and stored again: now the newest
    assert entry is not None
    assert cache.restore(entry, now=3) == []
    evicted = put(cache, "d", now=4) + put(cache, "e", now=5)
    assert [e.key for e in evicted] == ["b", "c"]
    assert cache.statistics().evictions == 2
    assert cache.checkout("a", now=6)[0] is not None


def test_ttl_expires_at_exact_times() -> None:
    cache = SessionCache(capacity=8, ttl=10)
    put(cache, "a", now=0)
    put(cache, "b", now=3)
    assert cache.next_expiry() == 10
    assert cache.expire(9.999) == []
    assert [e.key for e in cache.expire(10)] == ["a"]
    assert cache.next_expiry() == 13
    entry, expired = cache.checkout("b", now=13)
    assert entry is None and [e.key for e in expired] == ["b"]
    assert cache.statistics().expirations == 2


def test_restore_of_an_expired_entry_returns_it_for_deletion() -> None:
    cache = SessionCache(capacity=8, ttl=10)
    put(cache, "a", now=0)
    entry, _ = cache.checkout("a", now=5)
    assert entry is not None
    assert cache.restore(entry, now=10) == [entry]
    assert len(cache) == 0


def test_same_key_replaces_and_returns_the_old_session() -> None:
    cache = SessionCache(capacity=8, ttl=10)
    put(cache, "a", now=0, sid="old")
    assert [e.session_id for e in put(cache, "a", now=1, sid="new")] == ["old"]


def test_capacity_zero_disables_reuse() -> None:
    cache = SessionCache(capacity=0, ttl=10)
    assert [e.session_id for e in put(cache, "a", now=0)] == ["s-a"]
    assert len(cache) == 0
