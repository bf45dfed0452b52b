"""The client-tool policy of one request, applied at the end of each upstream answer.

Valid calls end the turn with ``Finish(TOOL_USE)``; a problem (or no call when ``tool_choice``
demands one) asks the caller, once, to re-ask the model in the same upstream session
(:attr:`ClientToolTurn.reask`) — unless part of the faulty call already reached the client, or
the one re-ask was spent: then a ``StreamError`` ends it.
"""

from __future__ import annotations

from collections.abc import Callable

from ..conversation import ChatRequest
from ..events import ErrorKind, Event, Finish, FinishReason, StreamError, TextDelta
from ._filter import CallProblem, ParsedCall, Toolbox, ToolCallFilter, new_call_id
from ._prompt import reask_text

__all__ = ["ClientToolTurn", "reask_message"]


def reask_message(problem: CallProblem, box: Toolbox, *, accepted: int = 0) -> str:
    """The re-ask for ``problem``: the schema of the tool it concerns, else the tool names."""
    return reask_text(problem.message, tool=box.tools.get(problem.tool or ""), tool_names=list(box.tools),
                      accepted=accepted)


class ClientToolTurn:
    """Client tools for one request, across its upstream answers (the first and one re-ask).

    Feed every upstream event batch; after a batch, :attr:`reask` (when not None) is the text to
    send into the same upstream session (``isReply``) before feeding its answer the same way.
    """

    def __init__(self, request: ChatRequest, *, incremental: bool, new_id: Callable[[], str] | None = None,
                 reasks: int = 1) -> None:
        prefix = request.tool_id_prefix
        self._box = Toolbox(request.tools, choice=request.tool_choice, parallel=request.parallel_tool_calls)
        self._new_id = new_id or (lambda: new_call_id(prefix))
        self._incremental = incremental
        self._filter = self._new_filter()
        self._reasks = reasks
        self.calls: list[ParsedCall] = []
        self.reask: str | None = None

    def __repr__(self) -> str:
        return f"<ClientToolTurn calls={len(self.calls)} reasks_left={self._reasks}>"

    def _new_filter(self) -> ToolCallFilter:
        return ToolCallFilter(self._box, new_id=self._new_id, incremental=self._incremental)

    def feed(self, events: list[Event]) -> list[Event]:
        """Answer text becomes text and tool-call events; the Finish is decided here."""
        self.reask = None
        out: list[Event] = []
        for event in events:
            match event:
                case TextDelta(text=text):
                    out += self._filter.feed(text)
                case Finish():
                    out += self._filter.close()
                    out += self._decide(event)
                case StreamError():
                    out += self._filter.close()
                    out.append(event)
                case _:
                    out.append(event)
        return out

    def take_reask(self) -> str | None:
        """The re-ask to send now (once), clearing it."""
        reask, self.reask = self.reask, None
        return reask

    def _decide(self, finish: Finish) -> list[Event]:
        self.calls += self._filter.calls
        problem = self._filter.problem
        if problem is None and not self.calls and self._box.mandatory and finish.reason is FinishReason.STOP:
            problem = CallProblem(message=self._missing(), tool=self._chosen())
        self._filter = self._new_filter()
        if problem is None:
            return [Finish(reason=FinishReason.TOOL_USE)] if self.calls else [finish]
        if self._reasks > 0 and not problem.sent:
            self._reasks -= 1
            self.reask = reask_message(problem, self._box, accepted=len(self.calls))
            return []
        why = "after one retry" if not problem.sent else "and part of it was already sent"
        return [StreamError(kind=ErrorKind.UPSTREAM_ERROR,
                            message=f"The model made an invalid tool call {why}: {problem.message}")]

    def _chosen(self) -> str | None:
        return self._box.choice["name"] if isinstance(self._box.choice, dict) else None

    def _missing(self) -> str:
        name = self._chosen()
        what = f"a call of the tool {name!r}" if name else "at least one tool call"
        return f"this reply must contain {what} in a <tool_call> block, and it had none"
