"""Token counting: the Qwen figures, the one input rule, and the exact running count."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_lingma.protocol.client_tools import describe_tools
from trio_lingma.protocol.conversation import (
    ChatRequest,
    Image,
    Message,
    ToolSpec,
    flatten,
)
from trio_lingma.protocol.tokens import (
    IMAGE_TOKENS,
    RunningCount,
    count_input_tokens,
    count_text,
)

FOX = "The quick brown fox jumps over the lazy dog. "

# Characters around which Qwen's pre-tokenizer and BPE are least additive.
TRICKY = st.lists(
    st.sampled_from(list("ab Z1 9\n\t.,'-你好世界，。😀é") + ["\u0301", "\u200d", "'s", "'re", "  "]),
    max_size=30,
).map("".join)


def test_known_figure() -> None:
    assert count_text(FOX * 50) == 501


def test_empty_text_is_zero_tokens() -> None:
    assert count_text("") == 0


def test_multibyte_text_counts() -> None:
    assert count_text("你好") >= 1
    assert count_text("😀") >= 1


def test_special_token_strings_count_as_plain_text() -> None:
    # Not the single special id 151644: a client cannot smuggle control tokens in.
    assert count_text("<|im_start|>") > 1
    assert count_text("<|endoftext|>") > 1


def _request(**kw: object) -> ChatRequest:
    defaults: dict[str, object] = {"model": "m", "messages": (Message(role="user", text="hi"),)}
    defaults.update(kw)
    return ChatRequest(**defaults)  # type: ignore[arg-type]


def test_input_tokens_of_a_plain_request_are_the_flattened_text() -> None:
    request = _request(system="Be terse.")
    assert count_input_tokens(request) == count_text(flatten(request))


def test_input_tokens_are_the_question_with_its_tool_block_and_a_flat_cost_per_image() -> None:
    tool = ToolSpec(name="get_weather", description="Weather now",
                    parameters={"type": "object", "properties": {"city": {"type": "string"}}})
    images = (Image(media_type="image/png", data="AAAA"), Image(url="https://x/y.png"))
    request = _request(
        messages=(
            Message(role="user", text="look", images=images),
            Message(role="assistant", text="ok"),
            Message(role="user", text="and this", images=images[:1]),
        ),
        tools=(tool,),
    )
    expected = count_text(describe_tools(request) + "\n\n" + flatten(request)) + 3 * IMAGE_TOKENS
    assert count_input_tokens(request) == expected
    # tool_choice "none" offers no tools: nothing of them is sent, nothing is counted
    unoffered = attrs.evolve(request, tool_choice="none")
    assert count_input_tokens(unoffered) == count_text(flatten(request)) + 3 * IMAGE_TOKENS


def test_no_tools_costs_nothing() -> None:
    assert count_input_tokens(_request()) == count_text("hi")


def test_running_count_of_nothing_is_zero() -> None:
    meter = RunningCount()
    assert meter.total == 0
    assert meter.count_with("") == 0


def test_running_count_is_not_a_sum_of_delta_counts() -> None:
    # The reason RunningCount exists: " " + "好" is 2 tokens apart but 3 together.
    assert count_text(" 好") > count_text(" ") + count_text("好")
    meter = RunningCount()
    meter.append(" ")
    meter.append("好")
    assert meter.total == count_text(" 好")


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(TRICKY, max_size=8), extra=TRICKY)
def test_running_count_equals_the_count_of_the_whole_text(parts: list[str], extra: str) -> None:
    meter = RunningCount()
    for part in parts:
        meter.append(part)
    text = "".join(parts)
    assert meter.total == count_text(text)
    assert meter.count_with(extra) == count_text(text + extra)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(TRICKY, max_size=6), text=TRICKY, limit=st.integers(0, 40))
def test_fit_keeps_the_total_within_the_limit(parts: list[str], text: str, limit: int) -> None:
    meter = RunningCount()
    for part in parts:
        meter.append(part)
    kept = meter.fit(text, limit)
    assert text.startswith(kept)
    if meter.total <= limit:
        assert meter.count_with(kept) <= limit
    if meter.count_with(text) <= limit:
        assert kept == text


def test_fit_cuts_at_a_token_boundary() -> None:
    meter = RunningCount()
    meter.append("The quick")
    kept = meter.fit(" brown fox jumps", count_text("The quick brown fox"))
    assert kept == " brown fox"


def test_running_count_settles_long_text() -> None:
    meter = RunningCount()
    for n in range(200):
        meter.append(FOX)
        if n % 50 == 0:
            assert meter.count_with("x") == count_text(FOX * (n + 1) + "x")
            assert len("".join(meter._tail)) < 100  # after a count, only a short tail is uncounted
    assert meter.total == count_text(FOX * 200)
