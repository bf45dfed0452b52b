"""What current Anthropic clients send is accepted: real Claude Code 2.1 requests and every field
and block type of the public (beta) Messages API the gateway cannot honour but must tolerate.

The fixtures under ``tests/fixtures/`` are real bodies of Claude Code 2.1.332 (``claude -p`` with its
default tool set), captured on loopback and trimmed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trio_lingma import errors
from trio_lingma.protocol import anthropic as adapter
from trio_lingma.protocol.conversation import Message, flatten
from trio_lingma.protocol.tokens import count_input_tokens

FIXTURES = Path(__file__).parent / "fixtures"
CLAUDE_CODE = sorted(FIXTURES.glob("claude_code_*.json"))


def claude_code(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text())["body"]
    return body


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": "claude-opus-5-5", "max_tokens": 1024,
                            "messages": [{"role": "user", "content": "Hello"}]}
    return {**base, **fields}


def tool(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": f"The {name} tool.",
            "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}}, **extra}


def count(raw: dict[str, Any]) -> int:
    counted = {k: v for k, v in raw.items() if k != "max_tokens"}
    return adapter.count_tokens_response(adapter.parse_count_tokens_request(counted))["input_tokens"]


# --------------------------------------------------------------------------- real Claude Code requests


@pytest.mark.parametrize("path", CLAUDE_CODE, ids=[p.stem for p in CLAUDE_CODE])
def test_real_claude_code_requests_are_accepted(path: Path) -> None:
    raw = claude_code(path.name)
    request = adapter.parse_messages_request(raw)
    assert request.stream and request.thinking  # thinking: {"type": "adaptive", "display": "omitted"}
    # DeferredToolPlaceholder has defer_loading: true and nothing named it: not offered.
    assert "Bash" in {t.name for t in request.tools}
    assert "DeferredToolPlaceholder" not in {t.name for t in request.tools}
    assert "x-anthropic-billing-header" not in request.system
    # Its role: "system" message (the environment) is kept, in order, after the user's turn.
    roles = [m.role for m in request.messages]
    assert "system" in roles and roles.index("system") > roles.index("user")
    assert count_input_tokens(request) == count(raw)


def test_real_claude_code_tool_round_trip() -> None:
    request = adapter.parse_messages_request(claude_code("claude_code_2.1.332_tool_result_turn.json"))
    assert [m.role for m in request.messages] == ["user", "system", "assistant", "tool"]
    assert request.messages[2].tool_calls[0].name == "Bash"
    assert request.messages[3].text == "hi"


# --------------------------------------------------------------------------- system messages


def test_system_messages_stay_in_order() -> None:
    raw = body(system="Top.", messages=[
        {"role": "system", "content": "Early note."},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "system", "content": [{"type": "text", "text": "Skills:"}, {"type": "text", "text": "- x"}]},
        {"role": "user", "content": "c"},
    ])
    request = adapter.parse_messages_request(raw)
    assert request.system == "Top."
    assert request.messages == (
        Message(role="system", text="Early note."), Message(role="user", text="a"),
        Message(role="assistant", text="b"), Message(role="system", text="Skills:\n- x"),
        Message(role="user", text="c"),
    )
    question = flatten(request)
    assert question.index("System: Early note.") < question.index("User: a") < question.index("Skills:\n- x")
    assert question.endswith("Current request:\nSystem: Skills:\n- x\n\nUser: c")
    assert count_input_tokens(request) == count(raw)


def test_system_message_cleared_at_next_user_message() -> None:
    note = {"role": "system", "content": "Only for this turn.", "clear_at": "next_user_message"}
    first = adapter.parse_messages_request(body(messages=[{"role": "user", "content": "a"}, note]))
    assert first.messages[-1] == Message(role="system", text="Only for this turn.")
    later = adapter.parse_messages_request(body(messages=[
        {"role": "user", "content": "a"}, note, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"}]))
    assert [m.role for m in later.messages] == ["user", "assistant", "user"]


def test_system_message_with_only_tool_changes_adds_nothing_to_the_question() -> None:
    request = adapter.parse_messages_request(body(tools=[tool("Late", defer_loading=True)], messages=[
        {"role": "user", "content": "a"},
        {"role": "system", "content": [{"type": "tool_addition", "tool": {"type": "tool_reference", "name": "Late"}}]},
    ]))
    assert [m.role for m in request.messages] == ["user"]
    assert [t.name for t in request.tools] == ["Late"]


# --------------------------------------------------------------------------- fields Claude Code 2.1 sends

CLAUDE_CODE_FIELDS = {
    "output_config": {"effort": "medium", "format": None},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "metadata": {"user_id": '{"device_id":"0","session_id":"s"}'},
    "container": {"id": "c1", "skills": []},
    "mcp_servers": [{"type": "url", "url": "https://mcp.example/sse", "name": "m"}],
    "service_tier": "auto",
    "betas": ["context-management-2025-06-27"],
    "speed": "standard",
    "inference_geo": "",
}


@pytest.mark.parametrize("field", CLAUDE_CODE_FIELDS)
def test_claude_code_top_level_fields_are_tolerated(field: str) -> None:
    raw = body(**{field: CLAUDE_CODE_FIELDS[field]})
    assert adapter.parse_messages_request(raw).messages == (Message(role="user", text="Hello"),)


@pytest.mark.parametrize(("thinking", "on"), [
    ({"type": "adaptive"}, True), ({"type": "adaptive", "display": "omitted"}, True),
    ({"type": "enabled", "budget_tokens": 2048, "display": "summarized"}, True),
    ({"type": "disabled"}, False), ({"type": "between_tools"}, True),
])
def test_thinking_modes(thinking: dict[str, Any], on: bool) -> None:
    assert adapter.parse_messages_request(body(max_tokens=4096, thinking=thinking)).thinking is on


def test_cache_control_anywhere() -> None:
    ephemeral = {"type": "ephemeral", "ttl": "1h"}
    raw = body(
        system=[{"type": "text", "text": "S", "cache_control": ephemeral}],
        tools=[tool("Read", cache_control=ephemeral, strict=True, eager_input_streaming=True,
                    input_examples=[{"x": "a"}], allowed_callers=["direct"])],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": ephemeral}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "Read", "input": {}, "cache_control": ephemeral}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "r", "cache_control": ephemeral}]},
        ])
    request = adapter.parse_messages_request(raw)
    assert request.system == "S" and [t.name for t in request.tools] == ["Read"]
    assert request.messages[-1] == Message(role="tool", tool_call_id="t1", text="r")


def test_integral_floats_are_integers() -> None:
    assert adapter.parse_messages_request(body(max_tokens=1024.0)).max_tokens == 1024
    with pytest.raises(errors.InvalidRequest, match="max_tokens: Input should be a valid integer"):
        adapter.parse_messages_request(body(max_tokens=10.5))


# --------------------------------------------------------------------------- tools

SERVER_TOOLS = [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
    {"type": "web_fetch_20250910", "name": "web_fetch"},
    {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool", "max_characters": 1000},
    {"type": "bash_20250124", "name": "bash"},
    {"type": "code_execution_20250825", "name": "code_execution"},
    {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"},
    {"type": "memory_20250818", "name": "memory"},
    {"type": "mcp_toolset", "mcp_server_name": "m", "default_config": {"defer_loading": True}},
    {"type": "computer_20251124", "name": "computer", "display_width_px": 1024, "display_height_px": 768},
    {"type": "some_tool_from_2027", "whatever": 1},
]


def test_server_and_anthropic_defined_tools_are_ignored() -> None:
    request = adapter.parse_messages_request(body(tools=[*SERVER_TOOLS, tool("Read")]))
    assert [t.name for t in request.tools] == ["Read"]


def test_deferred_tools_are_offered_once_tool_search_names_them() -> None:
    tools = [tool("Read"), tool("Deferred", defer_loading=True), tool("Other", defer_loading=True)]
    before = adapter.parse_messages_request(body(tools=tools))
    assert [t.name for t in before.tools] == ["Read"]
    after = adapter.parse_messages_request(body(tools=tools, messages=[
        {"role": "user", "content": "find a tool"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "tool_reference", "tool_name": "Deferred"}]}]},
    ]))
    assert [t.name for t in after.tools] == ["Read", "Deferred"]


def test_tool_choice_naming_a_deferred_or_server_tool() -> None:
    deferred = adapter.parse_messages_request(body(tools=[tool("Read"), tool("Late", defer_loading=True)],
                                                   tool_choice={"type": "tool", "name": "Late"}))
    assert ([t.name for t in deferred.tools], deferred.tool_choice) == (["Read", "Late"], {"name": "Late"})
    server = adapter.parse_messages_request(body(tools=[*SERVER_TOOLS, tool("Read")],
                                                 tool_choice={"type": "tool", "name": "web_search"}))
    assert ([t.name for t in server.tools], server.tool_choice) == (["Read"], "auto")


def test_tool_removal_withdraws_a_tool() -> None:
    request = adapter.parse_messages_request(body(tools=[tool("Read"), tool("Write")], messages=[
        {"role": "user", "content": "a"},
        {"role": "system", "content": [{"type": "tool_removal", "tool": {"type": "tool_reference", "name": "Write"}}]},
    ]))
    assert [t.name for t in request.tools] == ["Read"]


# --------------------------------------------------------------------------- blocks of earlier turns

ASSISTANT_BLOCKS = [
    {"type": "thinking", "thinking": "hmm", "signature": "c2ln"},
    {"type": "redacted_thinking", "data": "xx"},
    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
     "content": [{"type": "web_search_result", "url": "https://e.example", "title": "t", "encrypted_content": "e"}]},
    {"type": "web_fetch_tool_result", "tool_use_id": "srvtoolu_2", "content": {"type": "web_fetch_result"}},
    {"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_3", "content": {}},
    {"type": "bash_code_execution_tool_result", "tool_use_id": "srvtoolu_4", "content": {}},
    {"type": "text_editor_code_execution_tool_result", "tool_use_id": "srvtoolu_5", "content": {}},
    {"type": "tool_search_tool_result", "tool_use_id": "srvtoolu_6", "content": {}},
    {"type": "mcp_tool_use", "id": "mcptoolu_1", "name": "f", "server_name": "m", "input": {}},
    {"type": "mcp_tool_result", "tool_use_id": "mcptoolu_1", "content": "done", "is_error": False},
    {"type": "container_upload", "file_id": "file_1"},
    {"type": "fallback", "from": {"model": "a"}, "to": {"model": "b"}},
]


@pytest.mark.parametrize("block", ASSISTANT_BLOCKS, ids=[b["type"] for b in ASSISTANT_BLOCKS])
def test_assistant_blocks_of_earlier_turns_are_accepted_and_not_sent(block: dict[str, Any]) -> None:
    request = adapter.parse_messages_request(body(messages=[
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [block, {"type": "text", "text": "said"}]},
        {"role": "user", "content": "b"}]))
    assert request.messages[1] == Message(role="assistant", text="said")


def test_compaction_summary_is_kept_as_text() -> None:
    request = adapter.parse_messages_request(body(messages=[
        {"role": "assistant", "content": [{"type": "compaction", "content": "Earlier: we fixed x."}]},
        {"role": "user", "content": "go on"}]))
    assert request.messages[0] == Message(role="assistant", text="Earlier: we fixed x.")


def test_user_blocks_document_search_result_and_tool_reference() -> None:
    request = adapter.parse_messages_request(body(messages=[{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"},
         "title": "T", "citations": {"enabled": True}},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "inner"}]}},
        {"type": "search_result", "source": "https://s.example", "title": "Result",
         "content": [{"type": "text", "text": "found"}]},
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "tool_reference", "tool_name": "Read"}]},
        {"type": "container_upload", "file_id": "file_1"},
    ]}]))
    assert request.messages == (
        Message(role="tool", tool_call_id="t", text="[tool available: Read]"),
        Message(role="user", text="doc\ninner\nResult (https://s.example):\nfound"),
    )


def test_pdf_and_file_documents_become_placeholders() -> None:
    # Claude Code's Read of a PDF answers with a document block in a tool result; it stays in every
    # later request, so it must not make the conversation a 400.
    request = adapter.parse_messages_request(body(messages=[{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "document", "title": "spec.pdf",
             "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}}]},
        {"type": "document", "source": {"type": "file", "file_id": "file_1"}},
    ]}]))
    assert request.messages == (
        Message(role="tool", tool_call_id="t", text="[document: spec.pdf (application/pdf): not readable by this gateway]"),
        Message(role="user", text="[document (file): not readable by this gateway]"),
    )


@pytest.mark.parametrize(("raw", "message"), [
    (body(messages=[{"role": "user", "content": [{"type": 7}]}]),
     "messages.0.content.0.type: Input tag '7' found using 'type' does not match any of the expected tags: "
     "'text', 'image', 'document', 'search_result', 'tool_result', 'container_upload'"),
    (body(messages=[{"role": "system", "content": [{"type": "image"}]}]),
     "messages.0.content.0.type: Input tag 'image' found using 'type' does not match any of the expected tags: "
     "'text', 'tool_addition', 'tool_removal'"),
    (body(messages=[{"role": "system", "content": "x", "clear_at": "soon"}]),
     "messages.0.clear_at: Input should be 'next_user_message' or 'never'"),
    (body(tools=[{"type": "custom", "name": "x"}]), "tools.0.input_schema: Field required"),
    (body(tools=[{"name": "Read", "input_schema": {"type": "object"}, "defer_loading": "yes"}]),
     "tools.0.defer_loading: Input should be a valid boolean"),
    (body(model=["m"]), "model: Input should be a valid string"),
    (body(messages=[{"content": "x"}]), "messages.0.role: Field required"),
])
def test_still_rejected(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.InvalidRequest) as info:
        adapter.parse_messages_request(raw)
    assert info.value.message == message
    assert info.value.param == message.partition(":")[0]
