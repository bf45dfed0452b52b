"""Restart backoff: the pure function, and the supervisor's restart times under MockClock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_lingma.backend import instance as instance_mod
from trio_lingma.backend.backoff import restart_delay
from trio_lingma.backend.instance import Instance, InstanceState
from trio_lingma.settings import Settings


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(0, 0.0), (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 30.0), (1000, 30.0)],
)
def test_restart_delay_doubles_then_caps(failures: int, expected: float) -> None:
    assert restart_delay(failures, initial=0.5, maximum=30.0) == expected


async def test_supervisor_restarts_at_exact_virtual_times(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    settings = Settings(lingma_work_root=str(tmp_path), restart_initial=1.0, restart_max=5.0)
    inst = Instance(0, settings)
    attempts: list[float] = []

    async def failing_life(self: Instance, on_ready: object) -> None:
        attempts.append(trio.current_time())
        raise instance_mod.InstanceDied("process exited with code 1")

    monkeypatch.setattr(Instance, "_one_life", failing_life)
    with trio.move_on_after(20):
        await inst.run()
    # lives start at 0, then after 1, 2, 4, 5, 5 ... seconds of backoff
    assert attempts[:6] == [0.0, 1.0, 3.0, 7.0, 12.0, 17.0]
    assert inst.restarts == len(attempts)
    assert inst.state is InstanceState.STOPPED
    assert "process exited with code 1" in (inst.last_error or "")


async def test_stable_life_resets_the_failure_count(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    settings = Settings(lingma_work_root=str(tmp_path), restart_initial=1.0, restart_max=60.0)
    inst = Instance(0, settings)
    attempts: list[float] = []

    async def life(self: Instance, on_ready: object) -> None:
        attempts.append(trio.current_time())
        if len(attempts) == 3:  # the third life is healthy for a long time, then dies
            self._set_state(InstanceState.READY)
            await trio.sleep(instance_mod.STABLE_AFTER + 1)
        raise instance_mod.InstanceDied("boom")

    monkeypatch.setattr(Instance, "_one_life", life)
    with trio.move_on_after(100):
        await inst.run()
    # 0 → +1 → +2 (third life lasts 61 s) → reset: +1 → +2
    assert attempts[:5] == [0.0, 1.0, 3.0, 65.0, 67.0]
