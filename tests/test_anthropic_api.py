"""The Anthropic route's stream loop, with a fake turn and virtual time (no sockets)."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_lingma.errors import UpstreamClosed
from trio_lingma.http.anthropic_api import StreamBody, _frame, stream_events
from trio_lingma.protocol.anthropic import MessageStream
from trio_lingma.protocol.events import Event, Finish, FinishReason, TextDelta, ThinkingDelta, Usage

from .anthropic_grammar import check_stream
from .test_e2e_anthropic import parse_sse


class FakeTurn:
    """Scripted like EventStream: ``(virtual time, events)``; ``[]`` after ``heartbeat`` of silence."""

    input_tokens = 7

    def __init__(self, script: list[tuple[float, list[Event]]], *, fail_at: float | None = None) -> None:
        self._script = list(script)
        self._fail_at = fail_at
        self.ended = False

    async def receive(self, *, heartbeat: float) -> list[Event]:
        due = self._script[0][0] if self._script else self._fail_at
        assert due is not None, "receive() after the end of the script"
        await trio.sleep_until(min(due, trio.current_time() + heartbeat))
        if trio.current_time() < due:
            return []
        if not self._script:
            raise UpstreamClosed("Lingma went away")
        _, events = self._script.pop(0)
        self.ended = any(isinstance(e, Finish) for e in events)
        return events


def _messages() -> MessageStream:
    return MessageStream(message_id="msg_test", model="qwen3-coder", input_tokens=7)


async def _timed(turn: FakeTurn, heartbeat: float) -> list[tuple[float, str, dict]]:
    start = trio.current_time()
    return [(trio.current_time() - start, name, payload)
            async for name, payload in stream_events(turn, _messages(), heartbeat=heartbeat)]


async def test_pings_at_exact_times_of_silence(autojump_clock: trio.testing.MockClock) -> None:
    turn = FakeTurn([
        (0.5, [TextDelta(text="a")]),
        (40.0, [TextDelta(text="b")]),
        (41.0, [Usage(input_tokens=7, output_tokens=2), Finish()]),
    ])
    with trio.fail_after(120):
        timed = await _timed(turn, heartbeat=15)
    check_stream([(name, payload) for _, name, payload in timed])
    assert [(t, name) for t, name, _ in timed] == [
        (0.0, "message_start"), (0.0, "ping"),
        (0.5, "content_block_start"), (0.5, "content_block_delta"),
        (15.5, "ping"), (30.5, "ping"),
        (40.0, "content_block_delta"),
        (41.0, "content_block_stop"), (41.0, "message_delta"), (41.0, "message_stop"),
    ]
    assert timed[-2][2]["usage"]["output_tokens"] == 2


async def test_no_ping_when_upstream_keeps_talking(autojump_clock: trio.testing.MockClock) -> None:
    script = [(float(t), [TextDelta(text=f"{t} ")]) for t in range(1, 30)]
    turn = FakeTurn([*script, (30.0, [Finish()])])
    with trio.fail_after(60):
        timed = await _timed(turn, heartbeat=1.5)
    assert [name for _, name, _ in timed].count("ping") == 1  # only the one after message_start


async def test_a_turn_without_terminal_event_still_ends_the_stream(autojump_clock: trio.testing.MockClock) -> None:
    turn = FakeTurn([(1.0, [ThinkingDelta(text="hmm")])])
    turn.ended = False

    async def receive_then_end(*, heartbeat: float) -> list[Event]:
        events = await FakeTurn.receive(turn, heartbeat=heartbeat)
        turn.ended = True  # a core bug: ended with no Finish/StreamError
        return events

    turn.receive = receive_then_end  # type: ignore[method-assign]
    with trio.fail_after(60):
        timed = await _timed(turn, heartbeat=15)
    events = [(name, payload) for _, name, payload in timed]
    check_stream(events)
    assert events[-1][1]["error"]["type"] == "api_error"


async def test_failure_after_headers_closes_the_block_and_ends_with_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What open_event_stream does with a GatewayError escaping the body: StreamBody.on_error."""
    body = StreamBody("msg_test", "qwen3-coder", heartbeat=5)
    turn = FakeTurn([(1.0, [TextDelta(text="half an ans")])], fail_at=12.0)
    chunks: list[bytes] = []
    with trio.fail_after(60):
        try:
            async for chunk in body.render(turn):
                chunks.append(chunk)
        except UpstreamClosed as exc:
            chunks.append(body.on_error(exc))
    events = parse_sse(b"".join(chunks).decode().splitlines())
    check_stream(events)
    assert [name for name, _ in events].count("ping") == 1 + 2  # after start, at 6 s and 11 s
    assert events[-2][0] == "content_block_stop"
    assert events[-1][1]["error"] == {"type": "api_error", "message": "Lingma went away"}
    assert body.on_error(UpstreamClosed("again")) == b""  # the stream is over: nothing more


def test_failure_before_message_start_is_still_a_well_formed_stream() -> None:
    from trio_lingma.errors import UpstreamClosed
    from trio_lingma.http.anthropic_api import StreamBody

    body = StreamBody("msg_x", "qwen3-coder", 15.0).on_error(UpstreamClosed("gone"))
    frames = [f for f in body.decode().split("\n\n") if f]
    names = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    assert names == ["message_start", "error"]


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["text", "thinking"]),
                                st.text(st.characters(exclude_categories=["Cs"]))), max_size=8))
def test_rendered_text_deltas_equal_the_encoded_events(steps: list[tuple[str, str]]) -> None:
    def stream() -> MessageStream:
        return MessageStream(message_id="msg_x", model="m\n\"q\"", input_tokens=3)

    fast, slow = stream(), stream()
    fast.start(), slow.start()
    events: list[Event] = [TextDelta(text=t) if kind == "text" else ThinkingDelta(text=t) for kind, t in steps]
    events += [Usage(input_tokens=3, output_tokens=5), Finish(reason=FinishReason.STOP)]
    for event in events:
        rendered = b"".join(p if isinstance(p, bytes) else _frame(p) for p in fast.parts(event))
        assert rendered == b"".join(_frame(p) for p in slow.feed(event))
