"""End to end: a real gateway with three simulator instances and real (disconnecting) clients;
and a one-slot gateway under a burst. ``sim/stats`` tells what actually reached upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio_websocket

from trio_lingma.protocol import jsonrpc

from .e2e_support import RunningGateway, run_gateway, simulator_pids, wait_for


async def _sim_stats(port: int) -> Any:
    peer = jsonrpc.Peer()
    with trio.fail_after(5):
        async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send_message(peer.send_request("sim/stats")[1])
            while True:
                for message in peer.receive_data(await ws.get_message()):
                    if isinstance(message, jsonrpc.Response):
                        return message.result


def sim_stats(gw: RunningGateway) -> list[dict[str, Any]]:
    """``sim/stats`` of every instance, by index."""
    def ports() -> list[int] | None:  # /readyz answers once one instance is ready: wait for all of them
        found = [i["ws_port"] for i in gw.readyz().json()["instances"]]
        return found if all(found) else None

    return [trio.run(_sim_stats, port) for port in wait_for(ports, timeout=30)]


def all_asks(gw: RunningGateway) -> list[dict[str, Any]]:
    return [ask for stats in sim_stats(gw) for ask in stats["asks"]]


def _chat(gw: RunningGateway, messages: list[dict[str, str]], **extra: Any) -> httpx.Response:
    body = {"model": "qwen3-coder", "messages": messages, **extra}
    return gw.http.post(f"{gw.base_url}/chat/completions", json=body, headers=gw.headers(), timeout=30)


def _content(line: str) -> str:
    choices = json.loads(line[5:]).get("choices") or [{}]
    return str(choices[0].get("delta", {}).get("content") or "")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    env = {"LINGMA_INSTANCES": "3", "LINGMA_CONCURRENCY": "2"}
    with run_gateway(tmp_path_factory.mktemp("pool"), env=env) as gateway:
        wait_for(lambda: gateway.readyz().json()["instances"][2]["state"] == "ready", 30)
        yield gateway


def test_follow_up_turn_reuses_the_upstream_session(gw: RunningGateway) -> None:
    history = [{"role": "user", "content": "affinity one"}]
    first = _chat(gw, history)
    assert first.status_code == 200, first.text
    answer = first.json()["choices"][0]["message"]["content"]
    history += [{"role": "assistant", "content": answer}, {"role": "user", "content": "affinity two"}]
    second = _chat(gw, history)
    assert second.json()["choices"][0]["message"]["content"] == "Echo: affinity two"
    asks = [a for a in all_asks(gw) if "affinity" in a["questionText"]]
    assert [a["isReply"] for a in asks] == [False, True]
    assert asks[1]["sessionId"] == asks[0]["sessionId"]
    assert asks[1]["questionText"] == "affinity two"  # only the new turn reached the simulator
    body = gw.readyz().json()
    assert body["sessions"]["hits"] >= 1 and body["in_flight"] == 0


def test_disconnect_mid_stream_stops_upstream_and_frees_the_slot(gw: RunningGateway) -> None:
    body = {"model": "qwen3-coder", "stream": True,
            "messages": [{"role": "user", "content": "[sim slow delay=0.2] walk away " + "z" * 300}]}
    with gw.http.stream("POST", f"{gw.base_url}/chat/completions", json=body, headers=gw.headers(),
                      timeout=30) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        next(line for line in lines if line.startswith("data:") and _content(line))
        assert gw.readyz().json()["in_flight"] == 1
    # the client is gone: chat/stop reaches the simulator, the slot and the session are freed
    ask = next(a for a in all_asks(gw) if "walk away" in a["questionText"])
    wait_for(lambda: any(ask["requestId"] in s["stops"] for s in sim_stats(gw)))
    wait_for(lambda: gw.readyz().json()["in_flight"] == 0)
    wait_for(lambda: any(ask["sessionId"] in s["deletedSessions"] for s in sim_stats(gw)))


def test_burst_against_one_slot_gets_exactly_the_answers_the_settings_imply(tmp_path: Path) -> None:
    env = {"LINGMA_INSTANCES": "1", "LINGMA_CONCURRENCY": "1", "QUEUE_SIZE": "2", "QUEUE_TIMEOUT": "1"}
    body = {"model": "qwen3-coder"}
    # The slot is held by a stream that hangs after its first chunk until the test closes it, so
    # however slow the machine, the burst meets a busy slot (a timed [sim slow] turn could end first).
    hold = {**body, "stream": True, "messages": [{"role": "user", "content": "[sim hang after=1] hold the slot"}]}
    with run_gateway(tmp_path, env=env) as gw, ThreadPoolExecutor(8) as pool, httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{gw.base_url}/chat/completions", headers=gw.headers(), json=hold) as holder:
            assert holder.status_code == 200
            wait_for(lambda: gw.readyz().json()["in_flight"] == 1)
            burst = [pool.submit(client.post, f"{gw.base_url}/chat/completions", headers=gw.headers(),
                                 json={**body, "messages": [{"role": "user", "content": f"burst {i}"}]})
                     for i in range(5)]
            answers = [f.result() for f in burst]
        wait_for(lambda: gw.readyz().json()["in_flight"] == 0)  # the slot is free once the holder left
        codes = sorted(r.status_code for r in answers)
        assert codes == [429, 429, 429, 503, 503]
        for response in answers:
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json()["error"]["code"] in ("rate_limit_exceeded", "queue_timeout")
        assert gw.readyz().json()["queued"] == 0
    assert simulator_pids(tmp_path) == []
