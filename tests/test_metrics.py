from __future__ import annotations

import attrs

from trio_lingma.backend.instance import InstanceSnapshot, InstanceState
from trio_lingma.observability.metrics import Metrics


@attrs.frozen
class _Snap:
    instances: tuple[InstanceSnapshot, ...]
    queued: int = 0


def _instance(index: int, state: InstanceState, in_flight: int) -> InstanceSnapshot:
    return InstanceSnapshot(index=index, state=state, pid=100 + index, restarts=index, in_flight=in_flight,
                            capacity=4, last_error=None, logged_in=True, ws_port=None)


def test_gauges_read_the_snapshot_at_scrape_time() -> None:
    snap = _Snap(instances=(_instance(0, InstanceState.READY, 2), _instance(1, InstanceState.BACKOFF, 0)), queued=3)
    metrics = Metrics(lambda: snap)
    text = metrics.render().decode()
    assert 'trio_lingma_in_flight{instance="0"} 2.0' in text
    assert 'trio_lingma_instance_state{instance="1",state="backoff"} 1.0' in text
    assert 'trio_lingma_instance_restarts_total{instance="1"} 1.0' in text
    assert "trio_lingma_queued 3.0" in text
    snap = _Snap(instances=(_instance(0, InstanceState.READY, 0),))
    assert 'trio_lingma_in_flight{instance="0"} 0.0' in metrics.render().decode()


def test_event_families_and_separate_registries() -> None:
    a, b = Metrics(lambda: _Snap(instances=())), Metrics(lambda: _Snap(instances=()))
    a.requests.labels("openai", "/v1/chat/completions", "200").inc()
    a.tokens.labels("qwen3-coder", "input").inc(12)
    a.latency.labels("openai", "/v1/chat/completions").observe(0.02)
    text = a.render().decode()
    assert 'trio_lingma_requests_total{protocol="openai",route="/v1/chat/completions",status="200"} 1.0' in text
    assert 'trio_lingma_tokens_total{direction="input",model="qwen3-coder"} 12.0' in text
    assert "trio_lingma_request_duration_seconds_bucket" in text
    assert "trio_lingma_requests_total{" not in b.render().decode()
