"""Client tools (function calling) over Lingma's text channel — sans-IO.

Theory of operation
-------------------
Lingma's ``chat/ask`` has no field for a caller's tools (lingma-protocol.md §4.2: its agent only
runs its own IDE tools), so the gateway emulates function calling in the prompt, as the public
proxies do (§4.1): the question opens with a compact description of the tools and ONE strict
calling convention, and the answer text is parsed back into tool calls.

The convention is Qwen's own (the models Lingma serves were trained on it)::

    <tool_call>
    {"name": "<tool name>", "arguments": {<JSON object>}}
    </tool_call>

Tags rather than a Markdown fence, because answers are full of ordinary fences that must stay
text. Tolerated on the way back: ``parameters``/``input`` for ``arguments``, arguments given as
a JSON *string*, Qwen3-Coder's ``<function=NAME><parameter=KEY>value</parameter></function>``
body, and a missing closing tag at the very end of the answer.

One matcher, :class:`ToolCallFilter`, serves both the streaming filter and the final parse
(:func:`parse_tool_calls` runs the same filter over the whole text), so the two can never
disagree on where a call starts — the tcflying bug (§4.1). Text that could still become
``<tool_call>`` is held back; whitespace just before a call is dropped; everything after the
first call that is not another call is dropped too (a model that keeps writing after a call is
inventing its result); a stray ``</tool_call>`` is dropped as well: nothing of the convention
ever reaches the text. A call's ``arguments``
object is streamed as :class:`ToolCallArgsDelta` pieces while it arrives (``incremental``), as
soon as the tool name is known and accepted; with ``incremental=False`` a call is emitted only
once complete and valid.

Each finished call is checked: known tool, allowed by ``tool_choice``, arguments valid against
the tool's JSON Schema (``jsonschema``; a schema that is itself invalid is not enforced). The
first problem is kept as a :class:`CallProblem`. :class:`ClientToolTurn` applies the request's
policy at the end of each upstream answer: valid calls end the turn with ``Finish(TOOL_USE)``;
a problem (or no call when ``tool_choice`` demands one) asks the caller, once, to re-ask the
model in the same upstream session (:attr:`ClientToolTurn.reask`) — unless part of the faulty
call already reached the client, or the one re-ask was spent: then a ``StreamError`` ends it.
With ``parallel_tool_calls: false`` only the first call block of an answer counts; later ones
are dropped.

The package splits that by job: ``_prompt`` (the question's tool block, the rules, the re-ask
text), ``_scan`` (the JSON scanner of a call body, an explicit state machine), ``_filter`` (the
matcher and the checks of finished calls) and ``_policy`` (what one request does at the end of
each answer).
"""

from ._filter import CallProblem, ParsedCall, Toolbox, ToolCallFilter, new_call_id, parse_tool_calls
from ._policy import ClientToolTurn, reask_message
from ._prompt import (
    CALL_CLOSE,
    CALL_OPEN,
    REASK_HEADING,
    TOOLS_HEADING,
    describe_tools,
    fresh_question,
    offers_tools,
    reply_question,
)

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "REASK_HEADING",
    "TOOLS_HEADING",
    "CallProblem",
    "ClientToolTurn",
    "ParsedCall",
    "ToolCallFilter",
    "Toolbox",
    "describe_tools",
    "fresh_question",
    "new_call_id",
    "offers_tools",
    "parse_tool_calls",
    "reask_message",
    "reply_question",
]
