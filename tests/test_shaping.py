"""OutputShaper: stop sequences, max_tokens and usage enforced on the event stream."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_lingma.protocol import tokens
from trio_lingma.protocol.events import (
    ErrorKind,
    Event,
    Finish,
    FinishReason,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolCallArgsDelta,
    ToolCallResult,
    ToolCallStart,
    Usage,
)
from trio_lingma.protocol.shaping import OutputShaper
from trio_lingma.protocol.tokens import count_text

FOX = "The quick brown fox jumps over the lazy dog. "
STOP11 = "<|STOP-11|>"  # 11 characters: the last 10 characters of text are held back
TEXTS = st.lists(
    st.sampled_from(list("ab xyz\n.,你好世界😀") + ["END", "EN", "the", "  "]), max_size=40
).map("".join)


def run(shaper: OutputShaper, events: list[Event]) -> list[Event]:
    return [out for event in events for out in shaper.feed(event)]


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def chunks(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False)]


def deltas(parts: list[str]) -> list[Event]:
    return [TextDelta(text=p) for p in parts]


def check_terminal(events: list[Event]) -> None:
    """Exactly one Usage, immediately before the one terminal event, which comes last."""
    assert [type(e) for e in events[-2:]] == [Usage, Finish]
    assert sum(isinstance(e, Usage) for e in events) == 1
    assert sum(isinstance(e, (Finish, StreamError)) for e in events) == 1


def test_plain_text_passes_with_usage_then_finish() -> None:
    shaper = OutputShaper(input_tokens=7)
    out = run(shaper, [TextDelta(text="Hello"), TextDelta(text=" world"), Finish()])
    assert out == [
        TextDelta(text="Hello"),
        TextDelta(text=" world"),
        Usage(input_tokens=7, output_tokens=count_text("Hello world")),
        Finish(reason=FinishReason.STOP),
    ]


def test_upstream_usage_is_reported_when_upstream_ends_the_turn() -> None:
    shaper = OutputShaper(input_tokens=3)
    out = run(shaper, [TextDelta(text="hi"), Usage(input_tokens=999, output_tokens=998), Finish()])
    check_terminal(out)
    assert out[-2] == Usage(input_tokens=999, output_tokens=998)


def test_upstream_usage_is_not_reported_for_a_turn_the_gateway_cut() -> None:
    shaper = OutputShaper(input_tokens=3, stop=("x",))
    out = run(shaper, [Usage(input_tokens=999, output_tokens=998), TextDelta(text="hix more"), Finish()])
    check_terminal(out)
    assert out[-2] == Usage(input_tokens=3, output_tokens=count_text("hi"))
    assert out[-1] == Finish(reason=FinishReason.STOP_SEQUENCE, stop_sequence="x")


def test_empty_stream_reports_zero_output_tokens() -> None:
    out = run(OutputShaper(input_tokens=1), [Finish()])
    assert out == [Usage(input_tokens=1, output_tokens=0), Finish()]


def test_nothing_comes_out_after_done() -> None:
    shaper = OutputShaper(input_tokens=0)
    run(shaper, [TextDelta(text="a"), Finish()])
    assert shaper.done
    for event in [TextDelta(text="b"), ThinkingDelta(text="t"), Finish(),
                  StreamError(kind=ErrorKind.INTERNAL, message="x"), ToolCallStart(id="1", name="f")]:
        assert shaper.feed(event) == []


# --- stop sequences -------------------------------------------------------------------------


def test_stop_sequence_split_at_every_position_never_leaks() -> None:
    text = "Answer: 42<STOP>ignored tail"
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            shaper = OutputShaper(input_tokens=0, stop=("<STOP>",))
            out = run(shaper, deltas([text[:i], text[i:j], text[j:]]) + [Finish()])
            emitted = text_of(out)
            assert emitted == "Answer: 42", (i, j)
            check_terminal(out)
            assert out[-1] == Finish(reason=FinishReason.STOP_SEQUENCE, stop_sequence="<STOP>")
            assert shaper.done


def test_stop_sequence_fed_character_by_character() -> None:
    shaper = OutputShaper(input_tokens=0, stop=("END",))
    out = run(shaper, deltas(list("abc ENxEND more")))
    assert text_of(out) == "abc ENx"
    assert out[-1].stop_sequence == "END"  # type: ignore[union-attr]
    assert shaper.done


def test_held_text_that_was_not_a_stop_is_flushed_at_finish() -> None:
    shaper = OutputShaper(input_tokens=0, stop=("END",))
    out = run(shaper, [TextDelta(text="the EN"), Finish()])
    assert text_of(out) == "the EN"
    assert out[-1] == Finish(reason=FinishReason.STOP)


def test_the_stop_string_occurring_first_in_the_text_wins() -> None:
    # Listed second but occurring first: it must win, nothing after it may leak.
    shaper = OutputShaper(input_tokens=0, stop=("END", "STOP"))
    out = run(shaper, [TextDelta(text="one STOP two END three"), Finish()])
    assert text_of(out) == "one "
    assert out[-1] == Finish(reason=FinishReason.STOP_SEQUENCE, stop_sequence="STOP")


def test_overlapping_stops_the_one_completed_first_wins() -> None:
    # A model stops generating as soon as "b" appears, before "abc" could be completed.
    for parts in (["xabc"], ["x", "a", "b", "c"], ["xa", "bc"]):
        shaper = OutputShaper(input_tokens=0, stop=("abc", "b"))
        out = run(shaper, deltas(parts))
        assert text_of(out) == "xa"
        assert out[-1] == Finish(reason=FinishReason.STOP_SEQUENCE, stop_sequence="b")


def test_stops_completed_together_the_longer_wins() -> None:
    shaper = OutputShaper(input_tokens=0, stop=("bc", "abc"))
    out = run(shaper, [TextDelta(text="xabcd")])
    assert text_of(out) == "x"
    assert out[-1] == Finish(reason=FinishReason.STOP_SEQUENCE, stop_sequence="abc")


def test_empty_stop_strings_are_ignored() -> None:
    out = run(OutputShaper(input_tokens=0, stop=("",)), [TextDelta(text="abc"), Finish()])
    assert text_of(out) == "abc"
    assert out[-1] == Finish()


def test_stop_sequence_at_the_very_start_emits_no_text() -> None:
    out = run(OutputShaper(input_tokens=0, stop=("##",)), [TextDelta(text="##x")])
    assert out == [Usage(input_tokens=0, output_tokens=0),
                   Finish(reason=FinishReason.STOP_SEQUENCE, stop_sequence="##")]


# --- max_tokens -------------------------------------------------------------------------------


def test_max_tokens_cuts_at_a_token_boundary_with_length() -> None:
    budget = count_text("The quick brown fox")
    shaper = OutputShaper(input_tokens=0, max_tokens=budget)
    out = run(shaper, [TextDelta(text=FOX * 3), Finish()])
    assert text_of(out) == "The quick brown fox"
    check_terminal(out)
    assert out[-2] == Usage(input_tokens=0, output_tokens=budget)
    assert out[-1] == Finish(reason=FinishReason.LENGTH)
    assert shaper.done


def test_text_exactly_at_the_budget_finishes_normally() -> None:
    budget = count_text(FOX)
    out = run(OutputShaper(input_tokens=0, max_tokens=budget), [TextDelta(text=FOX), Finish()])
    assert text_of(out) == FOX
    assert out[-1] == Finish(reason=FinishReason.STOP)


def test_more_text_after_an_exactly_used_budget_is_length() -> None:
    budget = count_text("The quick brown fox")
    shaper = OutputShaper(input_tokens=0, max_tokens=budget)
    out = run(shaper, [TextDelta(text="The quick brown fox"), TextDelta(text=" jumps"), Finish()])
    assert text_of(out) == "The quick brown fox"
    assert out[-1] == Finish(reason=FinishReason.LENGTH)


def test_text_that_merges_into_the_last_token_still_fits() -> None:
    # FOX ends in a space token; " More" is one token, so "...dog. More" costs no more.
    budget = count_text(FOX)
    assert count_text(FOX + "More") == budget
    out = run(OutputShaper(input_tokens=0, max_tokens=budget), [TextDelta(text=FOX), TextDelta(text="More"), Finish()])
    assert text_of(out) == FOX + "More"
    assert out[-1] == Finish()


def test_max_tokens_zero_emits_nothing() -> None:
    out = run(OutputShaper(input_tokens=2, max_tokens=0), [TextDelta(text="hi")])
    assert out == [Usage(input_tokens=2, output_tokens=0), Finish(reason=FinishReason.LENGTH)]


def test_thinking_counts_toward_the_budget() -> None:
    thinking = "Let me think about the fox."
    budget = count_text(thinking + "The quick")
    shaper = OutputShaper(input_tokens=0, max_tokens=budget)
    out = run(shaper, [ThinkingDelta(text=thinking), TextDelta(text=FOX), Finish()])
    assert out[0] == ThinkingDelta(text=thinking)
    assert text_of(out) == "The quick"
    assert out[-1] == Finish(reason=FinishReason.LENGTH)
    assert out[-2].output_tokens <= budget  # type: ignore[union-attr]


def test_thinking_itself_is_cut_by_the_budget() -> None:
    shaper = OutputShaper(input_tokens=0, max_tokens=count_text("The quick"))
    out = run(shaper, [ThinkingDelta(text=FOX), TextDelta(text="never")])
    assert out[0] == ThinkingDelta(text="The quick")
    assert out[1:] == [Usage(input_tokens=0, output_tokens=count_text("The quick")),
                       Finish(reason=FinishReason.LENGTH)]


def test_budget_is_counted_on_the_whole_text_not_summed_per_delta() -> None:
    # " " and "好" are 1 token each but " 好" is 3: summing per delta would allow 2.
    shaper = OutputShaper(input_tokens=0, max_tokens=2)
    out = run(shaper, [TextDelta(text=" "), TextDelta(text="好"), Finish()])
    usage = next(e for e in out if isinstance(e, Usage))
    assert usage.output_tokens <= 2
    assert usage.output_tokens == count_text(text_of(out))
    assert out[-1] == Finish(reason=FinishReason.LENGTH)


def test_stop_sequence_and_budget_together_budget_first() -> None:
    shaper = OutputShaper(input_tokens=0, max_tokens=count_text("The quick"), stop=("dog",))
    out = run(shaper, [TextDelta(text=FOX)])
    assert text_of(out) == "The quick"
    assert out[-1] == Finish(reason=FinishReason.LENGTH)


def test_custom_count_function_is_used_for_budget_and_usage() -> None:
    shaper = OutputShaper(input_tokens=0, max_tokens=5, count=len)
    out = run(shaper, [TextDelta(text="abc"), TextDelta(text="defgh")])
    assert text_of(out) == "abcde"
    assert out[-2:] == [Usage(input_tokens=0, output_tokens=5), Finish(reason=FinishReason.LENGTH)]


# --- errors and tools -------------------------------------------------------------------------


def test_stream_error_passes_and_flushes_held_text() -> None:
    error = StreamError(kind=ErrorKind.UPSTREAM_CLOSED, message="gone")
    shaper = OutputShaper(input_tokens=0, stop=("END",))
    out = run(shaper, [TextDelta(text="partial EN"), error, Finish()])
    assert out == [TextDelta(text="partial "), TextDelta(text="EN"), error]
    assert shaper.done


def test_tool_events_pass_through_after_pending_text() -> None:
    tool_events: list[Event] = [
        ToolCallStart(id="c1", name="read_file"),
        ToolCallArgsDelta(id="c1", json='{"path":"a"}'),
        ToolCallResult(id="c1", content="data"),
    ]
    shaper = OutputShaper(input_tokens=0, stop=("STOP",))
    out = run(shaper, [TextDelta(text="Reading"), *tool_events, Finish(reason=FinishReason.TOOL_USE)])
    assert text_of(out[:2]) == "Reading"  # the held "ing" comes before the tool call
    assert out[2:5] == tool_events
    check_terminal(out)
    assert out[-1] == Finish(reason=FinishReason.TOOL_USE)


def test_thinking_after_held_text_keeps_stream_order() -> None:
    shaper = OutputShaper(input_tokens=0, stop=("STOP",))
    out = run(shaper, [TextDelta(text="ab"), ThinkingDelta(text="hmm"), Finish()])
    assert out[:2] == [TextDelta(text="ab"), ThinkingDelta(text="hmm")]


def test_no_tool_event_after_a_flush_that_used_up_the_budget() -> None:
    # " brown fox" is held back (it could start STOP11); flushing it crosses the budget.
    shaper = OutputShaper(input_tokens=0, max_tokens=count_text("The quick brown"), stop=(STOP11,))
    assert run(shaper, [TextDelta(text="The quick brown fox")]) == [TextDelta(text="The quick")]
    out = shaper.feed(ToolCallStart(id="c", name="f"))
    assert text_of(out) == " brown"
    assert out[-1] == Finish(reason=FinishReason.LENGTH)
    assert not any(isinstance(e, ToolCallStart) for e in out)


def test_no_error_after_a_flush_that_used_up_the_budget() -> None:
    shaper = OutputShaper(input_tokens=0, max_tokens=count_text("The quick brown"), stop=(STOP11,))
    error = StreamError(kind=ErrorKind.INTERNAL, message="x")
    out = run(shaper, [TextDelta(text="The quick brown fox"), error])
    assert text_of(out) == "The quick brown"
    check_terminal(out)
    assert out[-1] == Finish(reason=FinishReason.LENGTH)
    assert error not in out


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(text=TEXTS, cuts=st.lists(st.integers(0, 1000), max_size=10))
def test_any_chunking_emits_the_input_unchanged(text: str, cuts: list[int]) -> None:
    out = run(OutputShaper(input_tokens=0), deltas(chunks(text, cuts)) + [Finish()])
    assert text_of(out) == text
    check_terminal(out)
    assert out[-2] == Usage(input_tokens=0, output_tokens=count_text(text))


@settings(max_examples=200, deadline=None)
@given(text=TEXTS, cuts=st.lists(st.integers(0, 1000), max_size=10),
       stop=st.lists(st.sampled_from(["END", "N", "xyz", "好世", "\n."]), max_size=3))
def test_stop_result_does_not_depend_on_chunking(text: str, cuts: list[int], stop: list[str]) -> None:
    whole = run(OutputShaper(input_tokens=0, stop=tuple(stop)), [TextDelta(text=text), Finish()])
    split = run(OutputShaper(input_tokens=0, stop=tuple(stop)), deltas(chunks(text, cuts)) + [Finish()])
    assert text_of(split) == text_of(whole)
    assert split[-2:] == whole[-2:]
    assert not any(s in text_of(split) for s in stop)
    assert text.startswith(text_of(split))


@settings(max_examples=200, deadline=None)
@given(text=TEXTS, cuts=st.lists(st.integers(0, 1000), max_size=10), budget=st.integers(0, 30))
def test_output_tokens_never_exceed_max_tokens(text: str, cuts: list[int], budget: int) -> None:
    out = run(OutputShaper(input_tokens=0, max_tokens=budget), deltas(chunks(text, cuts)) + [Finish()])
    check_terminal(out)
    emitted = text_of(out)
    usage = out[-2]
    assert isinstance(usage, Usage)
    assert usage.output_tokens == count_text(emitted) <= budget
    assert text.startswith(emitted)
    if count_text(text) <= budget:
        assert emitted == text and out[-1] == Finish()
    else:
        assert out[-1] == Finish(reason=FinishReason.LENGTH)


def test_a_stream_counts_once_not_per_delta(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = tokens.count_text

    def counting(text: str) -> int:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(tokens, "count_text", counting)
    shaper = OutputShaper(input_tokens=5, max_tokens=4096)
    for n in range(500):
        assert shaper.feed(TextDelta(text=f"word{n} ")) == [TextDelta(text=f"word{n} ")]
    assert calls == []  # far below the budget: no count needed yet
    usage, finish = shaper.feed(Finish(reason=FinishReason.STOP))
    text = "".join(f"word{n} " for n in range(500))
    assert usage == Usage(input_tokens=5, output_tokens=real(text)) and len(calls) <= 2
