"""How a conversation becomes one Lingma question (fresh session) or one new turn."""

from __future__ import annotations

import json

from trio_lingma.protocol.conversation import (
    ChatRequest,
    Image,
    Message,
    ToolCall,
    ToolSpec,
    flatten,
    render_message,
    render_new_turn,
    split_new_turn,
    tools_json,
)


def user(text: str, **kw: object) -> Message:
    return Message(role="user", text=text, **kw)  # type: ignore[arg-type]


def assistant(text: str, **kw: object) -> Message:
    return Message(role="assistant", text=text, **kw)  # type: ignore[arg-type]


def request(*messages: Message, system: str = "") -> ChatRequest:
    return ChatRequest(model="m", messages=messages, system=system)


def test_single_user_message_is_its_raw_text() -> None:
    assert flatten(request(user("Write a haiku.\nAbout trio."))) == "Write a haiku.\nAbout trio."


def test_system_text_gets_its_own_section() -> None:
    assert flatten(request(user("hi"), system="Be terse.")) == (
        "System instructions:\nBe terse.\n\nCurrent request:\nhi"
    )


def test_multi_turn_transcript() -> None:
    got = flatten(request(user("What is 2+2?"), assistant("4"), user("And times 3?"), system="Math."))
    assert got == (
        "System instructions:\nMath.\n\n"
        "Conversation so far:\nUser: What is 2+2?\n\nAssistant: 4\n\n"
        "Current request:\nAnd times 3?"
    )


def test_multi_turn_without_system() -> None:
    got = flatten(request(user("a"), assistant("b"), user("c")))
    assert got == "Conversation so far:\nUser: a\n\nAssistant: b\n\nCurrent request:\nc"


def test_tool_calls_and_results_are_rendered() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city":"杭州"}')
    messages = (
        user("Weather?"),
        assistant("Let me check.", tool_calls=(call,)),
        Message(role="tool", text="sunny", tool_call_id="call_1"),
        Message(role="tool", text="timeout", tool_call_id="call_2", is_error=True),
    )
    assert flatten(request(*messages)) == (
        "Conversation so far:\nUser: Weather?\n\n"
        'Assistant: Let me check.\nTool call call_1: get_weather({"city":"杭州"})\n\n'
        "Current request:\nTool result (call_1): sunny\n\nTool result (call_2) (error): timeout"
    )


def test_images_become_placeholders() -> None:
    images = (Image(url="https://x/cat.png"), Image(media_type="image/png", data="AAAA"), Image(data="AAAA"))
    msg = user("What is this?", images=images)
    assert flatten(request(msg)) == (
        "What is this?\n[image: https://x/cat.png]\n[image: image/png]\n[image: inline]"
    )
    assert render_message(msg).startswith("User: What is this?\n[image: https://x/cat.png]")


def test_image_only_message() -> None:
    assert flatten(request(user("", images=(Image(url="u"),)))) == "[image: u]"


def test_split_new_turn_is_everything_after_the_last_assistant_message() -> None:
    a, b, c, d = user("a"), assistant("b"), user("c"), Message(role="tool", text="d", tool_call_id="t")
    assert split_new_turn((a, b, c, d)) == ((a, b), (c, d))
    assert split_new_turn((a,)) == ((), (a,))
    assert split_new_turn((a, b)) == ((a, b), ())
    assert split_new_turn(()) == ((), ())


def test_render_new_turn() -> None:
    assert render_new_turn((user("just this"),)) == "just this"
    tool_result = Message(role="tool", text="42", tool_call_id="c")
    assert render_new_turn((tool_result, user("thanks"))) == "Tool result (c): 42\n\nUser: thanks"
    assert render_new_turn(()) == ""


def test_reused_session_sends_only_the_new_turn() -> None:
    messages = (user("a"), assistant("b"), user("c"))
    history, new = split_new_turn(messages)
    assert render_new_turn(new) == "c"
    assert flatten(request(*messages)).endswith("Current request:\nc")


def test_conversation_ending_with_an_assistant_message_has_no_current_request() -> None:
    assert flatten(request(user("a"), assistant("b"))) == "Conversation so far:\nUser: a\n\nAssistant: b"


def test_system_only() -> None:
    assert flatten(request(system="S")) == "System instructions:\nS"


def test_tools_json_is_canonical() -> None:
    tools = (ToolSpec(name="f", description="d", parameters={"b": 1, "a": "中"}),)
    text = tools_json(tools)
    assert text == '[{"description":"d","name":"f","parameters":{"a":"中","b":1}}]'
    assert json.loads(text)[0]["name"] == "f"
    assert tools_json(()) == "[]"
