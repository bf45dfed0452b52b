"""The live trio task tree, for operators (``GET /debug/tasks``, SIGUSR1, ``trio-lingma tasks``).

Walks ``trio.lowlevel.current_root_task()`` through ``child_nurseries``/``child_tasks`` and
reports each task's name and where it is waiting (the innermost frame of its coroutine chain).
Reading the tree is synchronous and touches no task, so it is safe at any moment.
"""

from __future__ import annotations

import logging
import signal
import types
from typing import Any

import trio

__all__ = ["format_tree", "log_tree_on_signal", "task_tree"]

log = logging.getLogger(__name__)


def task_tree(root: trio.lowlevel.Task | None = None) -> dict[str, Any]:
    """The tree under ``root`` (default: the run's root task) as nested dicts."""
    root = root or trio.lowlevel.current_root_task()
    if root is None:
        raise RuntimeError("not inside trio.run")
    return _node(root)


def _node(task: trio.lowlevel.Task) -> dict[str, Any]:
    return {
        "name": task.name,
        "waiting_at": _waiting_at(task.coro),
        "children": [_node(child) for nursery in task.child_nurseries for child in nursery.child_tasks],
    }


def _waiting_at(coro: Any) -> str | None:
    """``function (file:line)`` of the innermost awaited frame outside trio's core."""
    frame_desc = None
    seen = 0
    while coro is not None and seen < 100:
        seen += 1
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        # trio's own traps say nothing to an operator: stop at the last frame outside them.
        if isinstance(frame, types.FrameType) and "/trio/_core/" not in frame.f_code.co_filename:
            frame_desc = f"{frame.f_code.co_name} ({_short(frame.f_code.co_filename)}:{frame.f_lineno})"
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frame_desc


def _short(path: str) -> str:
    for marker in ("/trio_lingma/", "/site-packages/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def format_tree(tree: dict[str, Any]) -> str:
    """The tree as indented text, one task a line."""
    lines: list[str] = []
    _format(tree, "", True, lines, top=True)
    return "\n".join(lines)


def _format(node: dict[str, Any], prefix: str, last: bool, lines: list[str], *, top: bool = False) -> None:
    where = f"  — {node['waiting_at']}" if node.get("waiting_at") else ""
    lines.append(("" if top else prefix + ("└── " if last else "├── ")) + node["name"] + where)
    children = node["children"]
    child_prefix = "" if top else prefix + ("    " if last else "│   ")
    for i, child in enumerate(children):
        _format(child, child_prefix, i == len(children) - 1, lines)


async def log_tree_on_signal(signum: int = signal.SIGUSR1) -> None:
    """Log the task tree each time ``signum`` arrives (runs until cancelled)."""
    try:
        receiver = trio.open_signal_receiver(signum)
    except RuntimeError:  # not the main thread (e.g. an embedding test harness): no dumps
        log.info("task-tree dumps on %s unavailable outside the main thread", signal.Signals(signum).name)
        return
    with receiver as signals:
        async for _ in signals:
            log.warning("task tree (%s):\n%s", signal.Signals(signum).name, format_tree(task_tree()))
