"""The nursery-tree dump shows named tasks and where they wait."""

from __future__ import annotations

import trio
import trio.testing

from trio_lingma.observability.tasks import format_tree, task_tree


async def test_tree_shows_named_children_and_waits() -> None:
    async def sleeper() -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper, name="lingma[0] supervisor")
        nursery.start_soon(sleeper, name="lingma[1] supervisor")
        await trio.testing.wait_all_tasks_blocked()
        tree = task_tree()
        text = format_tree(tree)
        nursery.cancel_scope.cancel()
    names = [line.split("— ")[0].strip(" │├└─") for line in text.splitlines()]
    assert "lingma[0] supervisor" in names and "lingma[1] supervisor" in names
    assert "sleep_forever" in text
    current = trio.lowlevel.current_task().name
    assert any(current in line for line in text.splitlines())
