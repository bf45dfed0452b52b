"""MODEL_ALIASES: glob patterns map client model names to catalogue models (trio_lingma/aliases.py)."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from trio_lingma.aliases import Alias, match_alias, parse_aliases
from trio_lingma.errors import ModelNotFound
from trio_lingma.settings import ConfigError, Settings

from .pool_support import chat, make_settings, open_pool, text_of

ALIASES = parse_aliases(["claude-*haiku*=small", "claude-*=qwen3-coder", "gpt-?=qwen3-coder", "o[0-9]*=x"])


def test_parse() -> None:
    assert parse_aliases([" Claude-* = qwen3-coder "]) == (Alias("claude-*", "qwen3-coder"),)
    for bad in ["claude-*", "=qwen3-coder", "claude-*=", "a=b=c"]:
        if bad == "a=b=c":  # the target is everything after the first "=": "b=c"
            assert parse_aliases([bad]) == (Alias("a", "b=c"),)
            continue
        with pytest.raises(ValueError, match="pattern=model"):
            parse_aliases([bad])


@pytest.mark.parametrize(("name", "target"), [
    ("claude-haiku-4-5-20251001", "small"),  # first match wins
    ("claude-opus-5-5", "qwen3-coder"),
    ("CLAUDE-Sonnet-4-5", "qwen3-coder"),  # case-insensitive
    ("gpt-5", "qwen3-coder"),
    ("gpt-5.1", None),  # ? is one character
    ("o3-mini", "x"),
    ("my-claude-opus", None),  # globs match the whole name
])
def test_match(name: str, target: str | None) -> None:
    alias = match_alias(name, ALIASES)
    assert (alias.target if alias else None) == target


def test_settings_validate_the_entries() -> None:
    settings = Settings.from_env({"MODEL_ALIASES": "claude-*=qwen3-coder, gpt-*=qwen3-coder"})
    assert settings.model_aliases == ("claude-*=qwen3-coder", "gpt-*=qwen3-coder")
    with pytest.raises(ConfigError, match="MODEL_ALIASES: must be comma-separated pattern=model entries"):
        Settings.from_env({"MODEL_ALIASES": "claude-*"})


async def test_the_gateway_resolves_through_aliases(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, model_aliases=("qwen3-*=nothing", "claude-*=QWEN3-CODER", "gpt-*=gone"))
    pool = await open_pool(nursery, settings, 1)
    assert pool.gw.resolve_model("qwen3-coder").id == "qwen3-coder"  # exact ids win over a matching alias
    assert pool.gw.resolve_model("claude-opus-5-5").id == "qwen3-coder"
    assert pool.gw.resolve_model("claude-opus-5-5:agent").id == "qwen3-coder"
    with pytest.raises(ModelNotFound, match="`gpt-5` is aliased to `gone` .MODEL_ALIASES., which does not exist"):
        pool.gw.resolve_model("gpt-5")
    with pytest.raises(ModelNotFound, match="The model `llama` does not exist"):
        pool.gw.resolve_model("llama")
    async with pool.gw.open_turn(attrs.evolve(chat("hi"), model="claude-haiku-4-5")) as stream:
        assert text_of(await stream.collect()) == "Echo: hi"
    assert pool.fakes[0].asks[-1]["extra"]["modelConfig"] == {"key": "qwen3-coder"}
