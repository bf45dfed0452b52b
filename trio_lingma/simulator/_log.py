"""``<workDir>/logs/lingma.log``: the service log tests and supervisors read.

The real binary reports readiness only here ("Communication servers ready - WebSocket: N,
HTTP: M", lingma-protocol.md §1.2) and logs protocol trouble ("Unknown message header",
"unknown method: X", "no response from client, timeout reached"), so the simulator writes the
same phrases. Lines are written synchronously and flushed at once: they are short, and a
supervisor polling the file must see the readiness line as soon as it is logged.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TextIO

__all__ = ["LingmaLog"]


class LingmaLog:
    """Append-only, line-flushed log file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: TextIO = path.open("a", encoding="utf-8", buffering=1)

    @classmethod
    def in_work_dir(cls, work_dir: Path) -> LingmaLog:
        return cls(work_dir / "logs" / "lingma.log")

    def __repr__(self) -> str:
        return f"<LingmaLog {self.path}>"

    def info(self, message: str) -> None:
        self._write("INFO", message)

    def warn(self, message: str) -> None:
        self._write("WARN", message)

    def error(self, message: str) -> None:
        self._write("ERROR", message)

    def close(self) -> None:
        self._file.close()

    def _write(self, level: str, message: str) -> None:
        if self._file.closed:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        millis = int(now * 1000) % 1000
        self._file.write(f"{stamp}.{millis:03d} {level} [pid {os.getpid()}] {message}\n")
