"""Every task the gateway spawns has an explicit name (they show in the operator's tree dump)."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from trio_lingma.backend.fake import FakeLingma
from trio_lingma.backend.gateway import Gateway
from trio_lingma.backend.instance import Instance
from trio_lingma.protocol.conversation import ChatRequest, Message
from trio_lingma.settings import Settings


class NameRecorder(trio.abc.Instrument):
    """Records (task name, default name) for every task running our code."""

    def __init__(self) -> None:
        self.ours: list[tuple[str, str]] = []

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        code = getattr(task.coro, "cr_code", None)
        module = task.coro.cr_frame.f_globals.get("__name__", "") if getattr(task.coro, "cr_frame", None) else ""
        if code is not None and module.startswith("trio_lingma"):
            self.ours.append((task.name, f"{module}.{code.co_qualname}"))


async def test_every_gateway_task_is_named(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    recorder = NameRecorder()
    trio.lowlevel.add_instrument(recorder)
    settings = Settings(lingma_work_root=str(tmp_path), lingma_concurrency=1, session_cache_size=1,
                        ping_interval=1.0, restart_initial=0.5)
    fakes = [FakeLingma(f"fake{i}") for i in range(2)]
    instances = [Instance(i, settings, connector=fakes[i].connector) for i in range(2)]
    gateway = Gateway(settings, instances=instances)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve, name="gateway")
            for instance in instances:
                while not instance.ready:
                    await instance.state_changed.wait()
            for text in ("one", "two", "three"):  # fills and evicts the session cache
                async with gateway.open_turn(ChatRequest(model="qwen3-coder",
                                                         messages=(Message(role="user", text=text),))) as s:
                    await s.collect()
            with trio.move_on_after(1):  # a cancelled turn: chat/stop
                async with gateway.open_turn(ChatRequest(model="qwen3-coder",
                                                         messages=(Message(role="user", text="[fake hang]"),))) as s:
                    await s.collect()
            fakes[0].kill()  # a restart
            await trio.sleep(5)
            nursery.cancel_scope.cancel()
    finally:
        trio.lowlevel.remove_instrument(recorder)
    assert recorder.ours, "no task of ours was seen"
    unnamed = sorted({default for name, default in recorder.ours if name == default})
    assert unnamed == [], f"tasks started without name=: {unnamed}"
    names = {name for name, _ in recorder.ours}
    assert {"lingma[0] supervisor", "lingma[1] supervisor", "session reaper"} <= names
