"""The access log of a real gateway: one INFO line per request, written when the response ended,
with what an operator needs to see why a client got what it got — and no key, no prompt text."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from .e2e_support import API_KEY, RunningGateway, run_gateway

PROMPT = "secret prompt words"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with run_gateway(tmp_path_factory.mktemp("access"), env={"LOG_FORMAT": "json"}) as gateway:
        yield gateway


def _access_line(gw: RunningGateway, request_id: str, timeout: float = 10) -> dict:
    """The access-log record of the request with ``request_id`` (waits for it)."""
    deadline = time.monotonic() + timeout
    while True:
        records = [json.loads(line) for line in gw.log().splitlines() if line.startswith("{")]
        found = [r for r in records if r["logger"] == "trio_lingma.access" and r["request_id"] == request_id]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, found
            assert found[0]["level"] == "INFO"
            return found[0]
        time.sleep(0.05)


def _post(gw: RunningGateway, path: str, body: dict, rid: str, key: str = API_KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "x-request-id": rid}
    return gw.http.post(gw.url + path, json=body, headers=headers, timeout=30)


def _chat(content: str, *, model: str = "qwen3-coder", stream: bool = False) -> dict:
    return {"model": model, "stream": stream, "max_tokens": 50, "messages": [{"role": "user", "content": content}]}


def test_a_completion_is_one_line_with_route_status_duration_and_model(gw: RunningGateway) -> None:
    assert _post(gw, "/v1/chat/completions", _chat(PROMPT), "rid-ok").status_code == 200
    message = _access_line(gw, "rid-ok")["message"]
    method, route, status, duration, model = message.split()
    assert (method, route, status, model) == ("POST", "/v1/chat/completions", "200", "model=qwen3-coder")
    assert duration.endswith("ms") and float(duration.removesuffix("ms")) > 0
    assert PROMPT not in gw.log() and API_KEY not in gw.log()


def test_client_errors_name_their_type_and_message(gw: RunningGateway) -> None:
    assert _post(gw, "/v1/messages", _chat("x"), "rid-401", key="sk-wrong-secret").status_code == 401
    line = _access_line(gw, "rid-401")["message"]
    assert line.startswith("POST /v1/messages 401 ") and "error=authentication_error: " in line
    assert "sk-wrong-secret" not in gw.log()
    assert _post(gw, "/v1/chat/completions", _chat("x", model="no-such-model"), "rid-404").status_code == 404
    line = _access_line(gw, "rid-404")["message"]
    assert "model=no-such-model" in line and "error=invalid_request_error: The model `no-such-model`" in line
    assert gw.http.get(f"{gw.url}/v1/nowhere", headers={"x-request-id": "rid-route"}, timeout=10).status_code == 404
    assert _access_line(gw, "rid-route")["message"].startswith("GET /v1/nowhere 404 ")


@pytest.mark.parametrize(("content", "outcome"), [("[sim long chunks=5] go", "completed"),
                                                   ("[sim error status=500 after=2] x", "failed")])
def test_a_stream_is_logged_when_it_ends_with_its_outcome(gw: RunningGateway, content: str, outcome: str) -> None:
    rid = f"rid-stream-{outcome}"
    response = _post(gw, "/v1/messages", _chat(content, stream=True), rid)
    assert response.status_code == 200
    line = _access_line(gw, rid)["message"]
    assert line.startswith("POST /v1/messages 200 ") and line.endswith(f"stream={outcome}")


def test_a_stream_the_client_abandons_is_logged_as_disconnected(gw: RunningGateway) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}", "x-request-id": "rid-gone"}
    body = _chat("[sim slow delay=0.2] " + "word " * 40, stream=True)
    with gw.http.stream("POST", f"{gw.base_url}/chat/completions", json=body, headers=headers, timeout=30) as r:
        next(r.iter_bytes())
    assert _access_line(gw, "rid-gone")["message"].endswith("stream=disconnected")
