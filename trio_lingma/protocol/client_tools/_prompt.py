"""The prompt text of client tools: the tool block of a fresh question, the per-turn rules of a
reused session, and the re-ask. The calling convention is Qwen's ``<tool_call>`` block."""

from __future__ import annotations

from ..conversation import ChatRequest, ToolSpec, flatten, render_new_turn, split_new_turn
from ..jsonutil import compact_json
from ..structured import format_block

__all__ = [
    "CALL_CLOSE",
    "CALL_EXAMPLE",
    "CALL_OPEN",
    "REASK_HEADING",
    "TOOLS_HEADING",
    "describe_tools",
    "fresh_question",
    "offers_tools",
    "reask_text",
    "reply_question",
]

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
CALL_EXAMPLE = '{"name": "<tool name>", "arguments": {<arguments as a JSON object>}}'
TOOLS_HEADING = "# Tools"
REASK_HEADING = "# Tool call rejected"


def offers_tools(request: ChatRequest) -> bool:
    """Whether the question describes tools (``tool_choice: "none"`` offers none)."""
    return bool(request.tools) and request.tool_choice != "none"


def _tool_line(tool: ToolSpec) -> str:
    params = {k: v for k, v in tool.parameters.items() if k != "$schema"}
    return compact_json({"name": tool.name, "description": tool.description, "parameters": params})


def _choice_rules(request: ChatRequest) -> list[str]:
    choice = request.tool_choice
    if choice == "none":
        return ["Do not call any tool in this reply; answer in plain text."]
    rules = []
    if isinstance(choice, dict):
        rules.append(f"You must call the tool `{choice['name']}` in this reply.")
    elif choice == "required":
        rules.append("You must call at least one tool in this reply.")
    else:
        rules.append("When no tool is needed, answer in plain text without any <tool_call> block.")
    if not request.parallel_tool_calls:
        rules.append("Call at most one tool in this reply.")
    return rules


def describe_tools(request: ChatRequest) -> str:
    """The tool block that opens a fresh question: tools, the convention, the rules."""
    return "\n".join([
        TOOLS_HEADING,
        "You can call the tools below. Each line inside <tools></tools> is one tool: its name, "
        "what it does and the JSON Schema of its arguments.",
        "<tools>", *(_tool_line(t) for t in request.tools), "</tools>",
        "To call a tool, write exactly this block, with one JSON object and nothing else inside:",
        CALL_OPEN, CALL_EXAMPLE, CALL_CLOSE,
        "Write one block per call (several blocks call several tools). After your calls stop "
        "writing: the results come back in the next message as `Tool result (<id>): ...`.",
        *_choice_rules(request),
    ])


def fresh_question(request: ChatRequest) -> str:
    """The whole question for a fresh upstream session (the tool block first, when offered;
    the response format block last, when asked for)."""
    question = flatten(request)
    question = f"{describe_tools(request)}\n\n{question}" if offers_tools(request) else question
    return _with_format(question, request)


def reply_question(request: ChatRequest) -> str:
    """The new turn for a reused session (which already has the tool block): turn + rules."""
    turn = render_new_turn(split_new_turn(request.messages)[1])
    if request.tools:
        turn += "\n\n(" + " ".join(_choice_rules(request)) + ")"
    return _with_format(turn, request)


def _with_format(question: str, request: ChatRequest) -> str:
    fmt = request.response_format
    return question if fmt is None else f"{question}\n\n{format_block(fmt)}"


def reask_text(why: str, *, tool: ToolSpec | None, tool_names: list[str], accepted: int = 0) -> str:
    """What the model is told, once, in the same session when its answer was unusable."""
    lines = [REASK_HEADING, f"Your reply could not be used: {why}."]
    if accepted:
        lines.append(f"Your other {accepted} tool call(s) were accepted; do not repeat them.")
    if tool is not None:
        lines.append(f"The arguments of `{tool.name}` must match this JSON Schema: {compact_json(tool.parameters)}")
    else:
        lines.append("The tools are: " + ", ".join(f"`{n}`" for n in tool_names) + ".")
    lines += ["Reply again with only the corrected tool call, exactly in this form:",
              CALL_OPEN, CALL_EXAMPLE, CALL_CLOSE]
    return "\n".join(lines)
