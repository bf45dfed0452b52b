"""The tool bridge, sans-IO: markers, tool cards and invokes → tool events; answers to invokes;
presentation modes; the wire encoders' rendering of Lingma-executed calls."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.anthropic_grammar import check_stream
from trio_lingma.backend.client import LingmaClient
from trio_lingma.backend.transport import memory_transport_pair
from trio_lingma.errors import UpstreamClosed
from trio_lingma.protocol import anthropic as anthropic_adapter
from trio_lingma.protocol import jsonrpc
from trio_lingma.protocol import openai as openai_adapter
from trio_lingma.protocol.agent_tools import (
    MARKER_MAX,
    UNKNOWN_TOOL,
    Marker,
    MarkerFilter,
    ToolAssembler,
    ToolBridge,
    ToolPresenter,
    parse_markers,
)
from trio_lingma.protocol.events import (
    Event,
    Finish,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallResult,
    ToolCallStart,
    Usage,
)
from trio_lingma.protocol.legacy import (
    LegacyTurn,
    followup_request,
    reply_to_server_request,
    split_model_mode,
    tool_invoke_refusal,
)

R, S = "req-1", "sess-1"


def marker(name: str, call_id: str, status: str = "INIT") -> str:
    return f"```toolCall::{name}::{call_id}::{status}\n```"


def answer(text: str) -> tuple[str, dict[str, Any]]:
    return "chat/answer", {"requestId": R, "sessionId": S, "text": text}


def sync(call_id: str, status: str, *, parameters: Any = None, results: Any = None,
         error: str = "") -> tuple[str, dict[str, Any]]:
    return "tool/call/sync", {
        "requestId": R, "sessionId": S, "projectPath": "/p", "toolCallId": call_id,
        "toolCallStatus": status, "parameters": parameters or {}, "results": results or [],
        "errorCode": "tool_error" if error else "", "errorMsg": error,
    }


def invoke(call_id: str, name: str, parameters: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "tool/invoke", {"requestId": R, "toolCallId": call_id, "name": name,
                           "parameters": parameters, "async": True}


FINISH = ("chat/finish", {"requestId": R, "sessionId": S, "reason": "success", "statusCode": 200})
REQUEST_FINISHED = sync("", "REQUEST_FINISHED")
PARAMS = {"file_path": "/p/a.py"}


def section8(call_id: str = "T1", *, last: tuple[str, dict[str, Any]] | None = None) -> list[Any]:
    """The §8 tool-call scenario, as pushes."""
    return [
        answer("Let me read it. "),
        answer(marker("read_file", call_id)),
        sync(call_id, "PENDING", parameters=PARAMS),
        sync(call_id, "RUNNING", parameters=PARAMS),
        invoke(call_id, "read_file", PARAMS),
        last or sync(call_id, "FINISHED", parameters=PARAMS, results=[{"content": "print(1)"}]),
        answer("It prints 1."),
        FINISH,
        REQUEST_FINISHED,
    ]


def run(pushes: list[Any]) -> list[list[Event]]:
    """Feed pushes to a LegacyTurn; the non-empty batches it returns."""
    turn = LegacyTurn(R)
    return [batch for method, params in pushes if (batch := turn.feed(method, params))]


def flat(batches: list[list[Event]]) -> list[Event]:
    return [e for batch in batches for e in batch]


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# --------------------------------------------------------------------------- the §8 scenario


def test_section8_sequence_becomes_tool_events() -> None:
    batches = run(section8())
    start = ToolCallStart(id="T1", name="read_file", executed=True)
    args = ToolCallArgsDelta(id="T1", json='{"file_path":"/p/a.py"}')
    assert [start, args] in batches  # one batch: the Anthropic block opens and fills at once
    events = flat(batches)
    assert events == [
        TextDelta(text="Let me read it. "), start, args,
        ToolCallResult(id="T1", content="print(1)", is_error=False),
        TextDelta(text="It prints 1."), Finish(),
    ]


def test_error_status_is_an_error_result() -> None:
    events = flat(run(section8(last=sync("T1", "ERROR", parameters=PARAMS, error="no such file"))))
    assert ToolCallResult(id="T1", content="no such file", is_error=True) in events


def test_cancelled_call_is_an_error_result() -> None:
    pushes = [answer(marker("run_in_terminal", "T9")),
              sync("T9", "PENDING", parameters={"command": "make"}),
              sync("T9", "CANCELLED"), FINISH]
    events = flat(run(pushes))
    assert events[:3] == [
        ToolCallStart(id="T9", name="run_in_terminal"),
        ToolCallArgsDelta(id="T9", json='{"command":"make"}'),
        ToolCallResult(id="T9", content="cancelled", is_error=True),
    ]


def test_interleaved_parallel_calls_keep_each_call_together() -> None:
    pushes = [
        answer(marker("read_file", "A") + marker("list_dir", "B")),
        sync("A", "PENDING", parameters={"file_path": "a"}),
        sync("B", "PENDING", parameters={"path": "/"}),
        sync("B", "RUNNING", parameters={"path": "/"}),
        sync("A", "RUNNING", parameters={"file_path": "a"}),
        sync("B", "FINISHED", results=[{"content": "a\nb"}]),
        sync("A", "FINISHED", results=[{"fileId": "f1", "message": "ok"}]),
        FINISH,
    ]
    batches = run(pushes)
    assert batches[:4] == [
        [ToolCallStart(id="A", name="read_file"), ToolCallArgsDelta(id="A", json='{"file_path":"a"}')],
        [ToolCallStart(id="B", name="list_dir"), ToolCallArgsDelta(id="B", json='{"path":"/"}')],
        [ToolCallResult(id="B", content="a\nb")],
        [ToolCallResult(id="A", content='{"fileId":"f1","message":"ok"}')],
    ]
    assert text_of(flat(batches)) == ""


def test_results_and_cards_after_the_end_are_ignored() -> None:
    events = flat(run([*section8(), sync("T1", "FINISHED", results=[{"content": "again"}])]))
    assert sum(isinstance(e, ToolCallResult) for e in events) == 1
    assert isinstance(events[-1], Finish)


# --------------------------------------------------------------------------- other orders


def test_name_from_invoke_when_no_marker_came() -> None:
    tools = ToolAssembler()
    assert tools.sync(sync("X", "PENDING", parameters=PARAMS)[1]) == []  # no name yet
    assert tools.invoke(invoke("X", "read_file", PARAMS)[1]) == [
        ToolCallStart(id="X", name="read_file"),
        ToolCallArgsDelta(id="X", json='{"file_path":"/p/a.py"}'),
    ]


def test_marker_after_the_card_starts_the_call() -> None:
    tools = ToolAssembler()
    tools.sync(sync("X", "RUNNING", parameters=PARAMS)[1])
    events = tools.answer("ok " + marker("read_file", "X", "RUNNING"))
    assert events == [TextDelta(text="ok "), ToolCallStart(id="X", name="read_file"),
                      ToolCallArgsDelta(id="X", json='{"file_path":"/p/a.py"}')]


def test_result_waits_for_the_name_then_finish_names_it_unknown() -> None:
    tools = ToolAssembler()
    assert tools.sync(sync("X", "FINISHED", results=[{"content": "r"}])[1]) == []
    assert tools.finish() == [ToolCallStart(id="X", name=UNKNOWN_TOOL),
                              ToolCallArgsDelta(id="X", json="{}"), ToolCallResult(id="X", content="r")]


def test_call_without_parameters_starts_with_its_result_or_at_finish() -> None:
    tools = ToolAssembler()
    assert tools.answer(marker("get_problems", "P")) == []
    assert tools.sync(sync("P", "FINISHED", results=[{"content": "none"}])[1]) == [
        ToolCallStart(id="P", name="get_problems"), ToolCallArgsDelta(id="P", json="{}"),
        ToolCallResult(id="P", content="none")]
    other = ToolAssembler()
    other.answer(marker("get_problems", "Q"))
    assert other.finish() == [ToolCallStart(id="Q", name="get_problems"), ToolCallArgsDelta(id="Q", json="{}")]


def test_marker_held_at_the_end_is_released_by_finish() -> None:
    turn = LegacyTurn(R)
    assert turn.feed(*answer("see ```toolCall::x")) == [TextDelta(text="see ")]
    assert turn.feed(*FINISH) == [TextDelta(text="```toolCall::x"), Finish()]


# --------------------------------------------------------------------------- the marker matcher


@pytest.mark.parametrize(
    "text",
    [
        "```python\nprint('a::b::c')\n```",  # ordinary code stays
        "```toolCall::only_two::parts\n```",  # not name::id::STATUS
        "```toolCall::read_file::T1::INIT\nline one\nline two\n```",  # the body is one line
        "```toolCall::bad name::T1::INIT\n```",
        "``` toolCall::read_file::T1::INIT\n```",
        "`toolCall::read_file::T1::INIT\n`",
    ],
)
def test_not_markers_stay_text(text: str) -> None:
    assert parse_markers(text) == (text, [])
    assert stream_items(text, 1) == [text]


def test_marker_fields_and_body() -> None:
    text = "a```toolCall::edit_file::id::with::colons::FINISHED\n\nbody```b"
    assert parse_markers(text) == ("ab", [Marker(name="edit_file", id="id::with::colons", status="FINISHED")])


def test_overlong_would_be_marker_is_text() -> None:
    text = "```toolCall::" + "x" * MARKER_MAX
    items = MarkerFilter().feed(text)
    assert items == [text]


def stream_items(text: str, *cuts: int) -> list[str | Marker]:
    """Feed ``text`` cut at ``cuts``; merge adjacent text pieces."""
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(text)), len(text)]
    f = MarkerFilter()
    items: list[str | Marker] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        items += f.feed(text[a:b])
    return merge(items + f.close())


def merge(items: list[str | Marker]) -> list[str | Marker]:
    out: list[str | Marker] = []
    for item in items:
        if isinstance(item, str) and out and isinstance(out[-1], str):
            out[-1] += item
        elif item != "":
            out.append(item)
    return out


SECTION8_TEXT = "Let me read it. " + marker("read_file", "T1") + "It prints 1."


@pytest.mark.parametrize("cut", range(len(SECTION8_TEXT) + 1))
def test_marker_split_at_every_position(cut: int) -> None:
    items = stream_items(SECTION8_TEXT, cut)
    assert items == ["Let me read it. ", Marker(name="read_file", id="T1", status="INIT"), "It prints 1."]


def test_no_marker_text_is_ever_released_early() -> None:
    f = MarkerFilter()
    released = ""
    for ch in SECTION8_TEXT:
        released += "".join(i for i in f.feed(ch) if isinstance(i, str))
        assert "`" not in released
    assert released == "Let me read it. It prints 1."


_plain = st.lists(st.sampled_from(list("ab:`\n ") + ["toolCall", "::", "```"]), max_size=12).map("".join)
_marker = st.builds(
    marker,
    st.sampled_from(["read_file", "edit_file", "run_in_terminal"]),
    st.from_regex(r"[A-Za-z0-9-]{1,12}", fullmatch=True),
    st.sampled_from(["INIT", "PENDING", "FINISHED"]),
)


@given(st.lists(st.one_of(_plain, _marker), max_size=8), st.lists(st.integers(0, 400), max_size=12))
def test_streaming_filter_equals_the_final_parse(pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces)
    whole_text, markers = parse_markers(text)
    items = stream_items(text, *cuts)
    assert [i for i in items if isinstance(i, Marker)] == markers
    assert "".join(i for i in items if isinstance(i, str)) == whole_text


@given(st.lists(st.one_of(_plain.filter(lambda t: "`" not in t), _marker), max_size=8),
       st.lists(st.integers(0, 400), max_size=12))
def test_every_marker_is_removed_whatever_the_chunking(pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces)
    items = stream_items(text, *cuts)
    assert "".join(i for i in items if isinstance(i, str)) == "".join(p for p in pieces if "`" not in p)
    assert len([i for i in items if isinstance(i, Marker)]) == sum("`" in p for p in pieces)


@given(st.integers(0, len(SECTION8_TEXT)), st.integers(0, len(SECTION8_TEXT)), st.booleans())
def test_turn_events_do_not_depend_on_chunking(a: int, b: int, error: bool) -> None:
    lo, hi = sorted((a, b))
    chunks = [SECTION8_TEXT[:lo], SECTION8_TEXT[lo:hi], SECTION8_TEXT[hi:]]
    last = sync("T1", "ERROR", error="boom") if error else sync("T1", "FINISHED", results=[{"content": "r"}])
    pushes = [answer(c) for c in chunks] + [sync("T1", "PENDING", parameters=PARAMS), last, FINISH]
    events = flat(run(pushes))
    assert text_of(events) == "Let me read it. It prints 1."
    kinds = [type(e).__name__ for e in events if not isinstance(e, TextDelta)]
    assert kinds == ["ToolCallStart", "ToolCallArgsDelta", "ToolCallResult", "Finish"]


# --------------------------------------------------------------------------- tool/invoke answers


def test_sync_invoke_gets_a_refusal_result() -> None:
    params = {"requestId": R, "toolCallId": "T1", "name": "read_file", "parameters": PARAMS, "async": False}
    result = reply_to_server_request("tool/invoke", params, now_ms=123)
    assert result == tool_invoke_refusal(params, now_ms=123)
    assert result["success"] is False and result["toolCallId"] == "T1" and result["name"] == "read_file"
    assert "does not execute IDE tools" in result["errorMessage"]
    assert result["result"] == {} and result["startTime"] == 123
    assert followup_request("tool/invoke", params) is None


def test_async_invoke_is_acked_then_refused_by_invoke_result() -> None:
    params = invoke("T1", "read_file", PARAMS)[1]
    assert reply_to_server_request("tool/invoke", params) is None
    method, body = followup_request("tool/invoke", params, now_ms=7) or ("", {})
    assert method == "tool/invokeResult"
    assert body == tool_invoke_refusal(params, now_ms=7)
    assert followup_request("chat/answer", {"async": True}) is None


def test_refusal_survives_junk_params() -> None:
    assert tool_invoke_refusal(None)["toolCallId"] == ""
    assert reply_to_server_request("tool/invoke", "junk")["success"] is False


@pytest.mark.parametrize(
    ("model", "expected"),
    [("qwen3-coder:agent", ("qwen3-coder", "agent")), ("Auto:CHAT", ("Auto", "chat")),
     ("qwen3-coder", ("qwen3-coder", None)), (":agent", (":agent", None))],
)
def test_model_suffix_picks_the_mode(model: str, expected: tuple[str, str | None]) -> None:
    assert split_model_mode(model) == expected


async def test_client_acks_then_sends_invoke_result_without_blocking_the_reader(nursery: trio.Nursery) -> None:
    client_end, server_end = memory_transport_pair()
    client = LingmaClient(client_end, name="test")

    async def serve() -> None:
        with pytest.raises(UpstreamClosed):
            await client.serve()

    nursery.start_soon(serve)
    peer = jsonrpc.Peer(first_id=100)
    inbox: list[jsonrpc.Received] = []

    async def next_message() -> jsonrpc.Received:
        while not inbox:
            inbox.extend(peer.receive_data(await server_end.receive()))
        return inbox.pop(0)

    with trio.fail_after(5):
        id_, frame = peer.send_request("tool/invoke", invoke("T1", "read_file", PARAMS)[1])
        await server_end.send(frame)
        ack = await next_message()
        follow = await next_message()
        assert ack == jsonrpc.Response(id=id_, result=None, method="tool/invoke")
        assert isinstance(follow, jsonrpc.Request) and follow.method == "tool/invokeResult"
        assert follow.params["success"] is False and follow.params["toolCallId"] == "T1"
        await server_end.send(peer.send_result(follow.id, {"errorCode": None, "errorMessage": None}))
        # the reader is still serving: a ping is answered at once
        ping_id, ping = peer.send_request("ping", None)
        await server_end.send(ping)
        assert await next_message() == jsonrpc.Response(id=ping_id, result={"success": True}, method="ping")
    assert client.unanswered_errors == 0
    await server_end.aclose()


# --------------------------------------------------------------------------- presentation


EXECUTED = flat(run(section8()))


def test_bridge_passes_events_on() -> None:
    assert ToolPresenter(ToolBridge.BRIDGE).feed(EXECUTED) == EXECUTED


def test_text_mode_renders_lines() -> None:
    presenter = ToolPresenter(ToolBridge.TEXT)
    out = [e for batch in run(section8()) for e in presenter.feed(batch)]
    assert all(isinstance(e, (TextDelta, Finish)) for e in out)
    assert text_of(out) == (
        "Let me read it. \n"
        '[tool call read_file {"file_path":"/p/a.py"}]\n'
        "[tool result read_file: print(1)]\n"
        "It prints 1."
    )


def test_text_mode_truncates_long_results_and_marks_errors() -> None:
    presenter = ToolPresenter(ToolBridge.TEXT)
    events: list[Event] = [ToolCallStart(id="a", name="f"), ToolCallArgsDelta(id="a", json="{}"),
                           ToolCallResult(id="a", content="x" * 2000), ToolCallResult(id="b", content="no", is_error=True)]
    text = text_of(presenter.feed(events))
    assert "… (2000 characters)]" in text and len(text) < 700
    assert text.endswith(f"[tool error {UNKNOWN_TOOL}: no]\n")


def test_off_drops_tool_events() -> None:
    out = ToolPresenter(ToolBridge.OFF).feed(EXECUTED)
    assert out == [e for e in EXECUTED if isinstance(e, (TextDelta, Finish))]


# --------------------------------------------------------------------------- wire rendering

END: list[Event] = [Usage(input_tokens=5, output_tokens=7), Finish()]
PARALLEL = flat(run([
    answer("Reading. " + marker("read_file", "A") + marker("list_dir", "B")),
    sync("A", "PENDING", parameters={"file_path": "a"}),
    sync("B", "PENDING", parameters={"path": "/"}),
    sync("B", "ERROR", error="denied"),
    sync("A", "FINISHED", results=[{"content": "data"}]),
    answer("Done."),
]))


def anthropic_stream(events: list[Event]) -> list[tuple[str, dict[str, Any]]]:
    stream = anthropic_adapter.MessageStream(message_id="msg_1", model="m", input_tokens=5, executed_tools="mcp")
    out = stream.start()
    for event in events:
        out += stream.feed(event)
    return out


def test_anthropic_mcp_blocks_stream_and_message() -> None:
    stream = anthropic_stream(PARALLEL + END)
    check_stream(stream)
    for name, payload in stream:
        if name == "content_block_start":
            block = payload["content_block"]
            assert block["type"] in ("text", "mcp_tool_use", "mcp_tool_result")
            anthropic.types.beta.BetaRawContentBlockStartEvent.model_validate(payload)
    message = anthropic_adapter.build_message(PARALLEL + END, message_id="msg_1", model="m", executed_tools="mcp")
    assert message["stop_reason"] == "end_turn"
    assert message["content"] == [
        {"type": "text", "text": "Reading. "},
        {"type": "mcp_tool_use", "id": "A", "name": "read_file", "server_name": "lingma", "input": {"file_path": "a"}},
        {"type": "mcp_tool_use", "id": "B", "name": "list_dir", "server_name": "lingma", "input": {"path": "/"}},
        {"type": "mcp_tool_result", "tool_use_id": "B", "is_error": True, "content": [{"type": "text", "text": "denied"}]},
        {"type": "mcp_tool_result", "tool_use_id": "A", "is_error": False, "content": [{"type": "text", "text": "data"}]},
        {"type": "text", "text": "Done."},
    ]
    parsed = anthropic.types.beta.BetaMessage.model_validate(message)  # strict: every block validates
    assert [b.type for b in parsed.content][1:5] == ["mcp_tool_use", "mcp_tool_use", "mcp_tool_result", "mcp_tool_result"]


def test_anthropic_default_keeps_tool_use_without_results() -> None:
    message = anthropic_adapter.build_message(PARALLEL + END, message_id="msg_1", model="m")
    assert [b["type"] for b in message["content"]] == ["text", "tool_use", "tool_use", "text"]
    assert message["stop_reason"] == "end_turn"
    anthropic.types.Message.model_validate(message)


def test_openai_tool_calls_with_stop() -> None:
    chunks_stream = openai_adapter.ChunkStream(completion_id="c", model="m", created=0, include_usage=False)
    chunks = [chunks_stream.first()] + [c for e in PARALLEL + END for c in chunks_stream.feed(e)]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for call in chunk["choices"][0]["delta"].get("tool_calls", []):
            slot = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
            slot["id"] = call.get("id", slot["id"])
            slot["name"] += call.get("function", {}).get("name", "")
            slot["arguments"] += call["function"]["arguments"]
    assert calls == {0: {"id": "A", "name": "read_file", "arguments": '{"file_path":"a"}'},
                     1: {"id": "B", "name": "list_dir", "arguments": '{"path":"/"}'}}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    body = openai_adapter.build_completion(PARALLEL + END, completion_id="c", model="m", created=0)
    completion = ChatCompletion.model_validate(body)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content == "Reading. Done."
    assert [json.loads(c.function.arguments) for c in completion.choices[0].message.tool_calls or []] == [
        {"file_path": "a"}, {"path": "/"}]
