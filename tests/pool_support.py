"""What the pool tests share: fake runtimes behind a real Gateway, under MockClock."""

from __future__ import annotations

from pathlib import Path

import attrs
import trio
import trio.testing

from trio_lingma.backend.fake import FakeLingma
from trio_lingma.backend.gateway import Gateway
from trio_lingma.backend.instance import Instance
from trio_lingma.protocol.conversation import ChatRequest, Message
from trio_lingma.protocol.events import Event, TextDelta
from trio_lingma.settings import Settings

__all__ = ["Pool", "chat", "make_settings", "open_pool", "text_of"]


def chat(*texts: str) -> ChatRequest:
    roles = ["user", "assistant"]
    messages = tuple(Message(role=roles[i % 2], text=t) for i, t in enumerate(texts))  # type: ignore[misc]
    return ChatRequest(model="qwen3-coder", messages=messages)


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@attrs.define
class Pool:
    gw: Gateway
    fakes: list[FakeLingma]

    async def ask(self, *texts: str, api_key: str | None = None) -> list[Event]:
        async with self.gw.open_turn(chat(*texts), api_key=api_key) as stream:
            return await stream.collect()

    def all_asks(self) -> list[dict]:
        return [a for f in self.fakes for a in f.asks]

    async def settle(self) -> None:
        await trio.testing.wait_all_tasks_blocked()

    def assert_idle(self) -> None:
        snap = self.gw.statistics()
        assert snap.idle, snap
        assert all(i.limiter.borrowed_tokens == 0 for i in self.gw.instances)
        assert self.gw.key_limits.active == 0


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    base: dict[str, object] = dict(
        lingma_work_root=str(tmp_path), lingma_concurrency=1, ping_interval=10.0, ping_timeout=5.0,
        queue_size=2, queue_timeout=5.0, session_cache_size=4, session_ttl=100.0,
        first_token_timeout=30.0, idle_timeout=30.0, restart_initial=0.5, per_key_concurrency=1)
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


async def open_pool(nursery: trio.Nursery, settings: Settings, n: int) -> Pool:
    fakes = [FakeLingma(f"fake{i}") for i in range(n)]
    instances = [Instance(i, settings, connector=fakes[i].connector) for i in range(n)]
    gw = Gateway(settings, instances=instances)
    await nursery.start(gw.serve)
    for instance in instances:
        while not instance.ready:
            await instance.state_changed.wait()
    return Pool(gw, fakes)
