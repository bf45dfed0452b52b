"""What the simulator remembers across connections: sessions, asks, stops, missed acks.

Plain synchronous bookkeeping (no trio), shared by every connection of one simulator so that
end-to-end tests can ask ``sim/stats`` what actually reached the "binary" (only the new turn,
a ``chat/stop``, a deleted session...).
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["AskRecord", "ChatRecord", "SimulatorState"]


@attrs.frozen(kw_only=True)
class AskRecord:
    """One ``chat/ask`` as received (sessionId after the simulator resolved an empty one)."""

    request_id: str
    session_id: str
    question_text: str
    is_reply: bool
    model: str
    mode: str

    def to_json(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "sessionId": self.session_id,
            "questionText": self.question_text,
            "isReply": self.is_reply,
            "model": self.model,
            "mode": self.mode,
        }


@attrs.frozen(kw_only=True)
class ChatRecord:
    request_id: str
    question: str
    answer: str
    timestamp_ms: int


@attrs.define
class _Session:
    title: str
    created_ms: int
    records: list[ChatRecord] = attrs.field(factory=list)


class SimulatorState:
    """Sessions by id plus the audit trail that ``sim/stats`` reports."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._asks: list[AskRecord] = []
        self._stops: list[str] = []
        self._deleted: list[str] = []
        self.unanswered_pushes = 0

    def __repr__(self) -> str:
        return (
            f"<SimulatorState sessions={len(self._sessions)} asks={len(self._asks)} "
            f"unanswered={self.unanswered_pushes}>"
        )

    def record_ask(self, ask: AskRecord) -> None:
        self._asks.append(ask)

    def record_stop(self, request_id: str) -> None:
        self._stops.append(request_id)

    def add_turn(self, session_id: str, record: ChatRecord) -> int:
        """Append a turn to the session's history (creating it); return the turn count."""
        session = self._sessions.get(session_id)
        if session is None:
            title = record.question.splitlines()[0][:40] if record.question else "New chat"
            session = self._sessions[session_id] = _Session(title, record.timestamp_ms)
        session.records.append(record)
        return len(session.records)

    def first_question(self, session_id: str) -> str:
        """The question that opened a session ("" when unknown): what a reply builds on."""
        session = self._sessions.get(session_id)
        return session.records[0].question if session and session.records else ""

    def delete_session(self, session_id: str) -> bool:
        self._deleted.append(session_id)
        return self._sessions.pop(session_id, None) is not None

    def clear_sessions(self) -> None:
        for session_id in list(self._sessions):
            self.delete_session(session_id)

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        session = self._sessions.get(session_id)
        return None if session is None else _session_json(session_id, session)

    def list_sessions(self) -> list[dict[str, Any]]:
        return [_session_json(sid, s) for sid, s in self._sessions.items()]

    def stats(self) -> dict[str, Any]:
        """A JSON snapshot for ``sim/stats``."""
        return {
            "asks": [ask.to_json() for ask in self._asks],
            "stops": list(self._stops),
            "deletedSessions": list(self._deleted),
            "unansweredPushes": self.unanswered_pushes,
            "sessions": {sid: len(s.records) for sid, s in self._sessions.items()},
        }


def _session_json(session_id: str, session: _Session) -> dict[str, Any]:
    """A ``ChatSession`` (lingma-protocol.md §3A) plus the simulator's ``turnCount``."""
    records = [
        {"requestId": r.request_id, "question": r.question, "answer": r.answer}
        for r in session.records
    ]
    return {
        "userId": "sim-user",
        "userName": "simulator",
        "sessionId": session_id,
        "sessionTitle": session.title,
        "projectId": "",
        "projectUri": "",
        "projectName": "",
        "gmtCreate": session.created_ms,
        "gmtModified": session.records[-1].timestamp_ms if session.records else session.created_ms,
        "chatRecords": records,
        "turnCount": len(records),
    }
