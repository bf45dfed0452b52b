"""End to end: real gateway process + real simulator subprocess, driven by httpx and the openai SDK."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from .e2e_support import API_KEY, ATTACHED, VARIANTS, RunningGateway, run_gateway, run_variant, simulator_pids


@pytest.fixture(scope="module", params=VARIANTS)
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    env = {"MAX_BODY_BYTES": str(1024 * 1024), "SSE_PING_INTERVAL": "0.5", "MODEL_ALIASES": "gpt-5*=qwen3-coder"}
    with run_variant(tmp_path_factory.mktemp("openai"), request.param, env=env) as gateway:
        gateway.variant = request.param
        yield gateway


@pytest.fixture(scope="module")  # one client per gateway, as an application has
def client(gw: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key=API_KEY, max_retries=0, timeout=30) as client:
        yield client


def _chat(gw: RunningGateway, body: dict, **kw) -> httpx.Response:
    return gw.http.post(f"{gw.base_url}/chat/completions", json=body, headers=gw.headers(), timeout=30, **kw)


def test_readyz_reports_the_simulator(gw: RunningGateway) -> None:
    body = gw.readyz().json()
    # spawned with no LINGMA_BINARY: the simulator, said loudly; attached: a runtime we don't own
    assert body["ready"] is True and body["simulator"] is (gw.variant not in ATTACHED)
    assert body["instances"][0]["state"] == "ready"


def test_curl_style_completion(gw: RunningGateway) -> None:
    response = _chat(gw, {"model": "qwen3-coder", "messages": [{"role": "user", "content": "hi there"}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Echo: hi there"
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert response.headers["x-request-id"]


def test_sdk_lists_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "qwen3-coder" in ids and "qwen3-thinking" in ids
    assert not any(i.startswith("gpt-") for i in ids)  # MODEL_ALIASES does not change the list


def test_model_alias_serves_and_echoes_the_requested_name(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    assert completion.model == "gpt-5" and completion.choices[0].message.content == "Echo: hi"
    with pytest.raises(openai.NotFoundError, match="claude-opus"):
        client.chat.completions.create(model="claude-opus", messages=[{"role": "user", "content": "hi"}])


def test_sdk_completes(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="qwen3-coder",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "ping"}],
    )
    assert completion.choices[0].message.content.endswith("ping")
    assert completion.usage is not None and completion.usage.prompt_tokens > 0


def test_sdk_streams_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="qwen3-coder", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "[sim long chunks=20] go"}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.count("chunk") == 20
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


# The SDK leaves its inner async generators unexhausted after `data: [DONE]` (they are GC'ed
# with a ResourceWarning inside openai/httpx2, not in our code).
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_async_sdk_streams(gw: RunningGateway) -> None:
    async with openai.AsyncOpenAI(base_url=gw.base_url, api_key=API_KEY, max_retries=0, timeout=30) as client:
        stream = await client.chat.completions.create(
            model="qwen3-coder", stream=True, messages=[{"role": "user", "content": "async hello"}],
        )
        async with stream:
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        models = await client.models.list()
    assert text == "Echo: async hello"
    assert any(m.id == "qwen3-coder" for m in models.data)


def test_thinking_becomes_reasoning_content(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="qwen3-thinking", messages=[{"role": "user", "content": "[sim think] why"}],
    )
    message = completion.choices[0].message.model_dump()
    assert message["reasoning_content"]
    assert message["content"]


def test_stop_and_max_tokens(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="qwen3-coder", stop=["lo w"], messages=[{"role": "user", "content": "hello world"}],
    )
    assert completion.choices[0].message.content == "Echo: hel"
    assert completion.choices[0].finish_reason == "stop"
    completion = client.chat.completions.create(
        model="qwen3-coder", max_tokens=3,
        messages=[{"role": "user", "content": "[sim long chunks=50] go"}],
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({"model": "qwen3-coder", "messages": [{"role": "user", "content": "x"}]}, {}, 401, "invalid_api_key"),
        ({"model": "gpt-17", "messages": [{"role": "user", "content": "x"}]}, None, 404, "model_not_found"),
        ({"model": "qwen3-coder", "n": 2, "messages": [{"role": "user", "content": "x"}]}, None, 400, None),
        ({"model": "qwen3-coder", "messages": []}, None, 400, None),
        ({"model": "qwen3-coder", "messages": [{"role": "wizard", "content": "x"}]}, None, 400, None),
    ],
)
def test_errors_in_openai_shape(gw: RunningGateway, body, headers, status, code) -> None:
    response = gw.http.post(f"{gw.base_url}/chat/completions", json=body,
                          headers=gw.headers() if headers is None else headers, timeout=10)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"} and error["message"]
    if code:
        assert error["code"] == code


def test_bad_json_and_oversize_body(gw: RunningGateway) -> None:
    response = gw.http.post(f"{gw.base_url}/chat/completions", content=b"{nope", headers=gw.headers(), timeout=10)
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]
    lone_surrogate = b'{"model":"qwen3-coder","messages":[{"role":"user","content":"\\ud800"}]}'
    response = gw.http.post(f"{gw.base_url}/chat/completions", content=lone_surrogate, headers=gw.headers(), timeout=10)
    assert response.status_code == 400 and "surrogate" in response.json()["error"]["message"]
    huge = {"model": "qwen3-coder", "messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}]}
    response = gw.http.post(f"{gw.base_url}/chat/completions", json=huge, headers=gw.headers(), timeout=10)
    assert response.status_code == 413
    assert response.json()["error"]["message"]


def test_sdk_raises_typed_errors(gw: RunningGateway) -> None:
    with openai.OpenAI(base_url=gw.base_url, api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    with openai.OpenAI(base_url=gw.base_url, api_key=API_KEY, max_retries=0) as good, \
            pytest.raises(openai.NotFoundError):
        good.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])


def test_upstream_error_non_stream_and_stream(gw: RunningGateway, client: openai.OpenAI) -> None:
    response = _chat(gw, {"model": "qwen3-coder", "messages": [{"role": "user", "content": "[sim error status=500] x"}]})
    assert response.status_code == 502
    assert "500" in response.json()["error"]["message"]
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(
            model="qwen3-coder", stream=True,
            messages=[{"role": "user", "content": "[sim error status=500 after=2] x"}],
        ))


def test_keepalive_comments_during_silence(gw: RunningGateway) -> None:
    body = {"model": "qwen3-coder", "stream": True,
            "messages": [{"role": "user", "content": "[sim slow delay=0.7] ab"}]}
    with gw.http.stream("POST", f"{gw.base_url}/chat/completions", json=body, headers=gw.headers(), timeout=30) as r:
        lines = [line for line in r.iter_lines() if line]
    assert any(line.startswith(":") for line in lines)
    assert lines[-1] == "data: [DONE]"


@pytest.mark.slow
def test_sigkill_of_the_runtime_fails_cleanly_and_recovers(tmp_path: Path) -> None:
    with run_gateway(tmp_path) as gw:
        body = {"model": "qwen3-coder", "stream": True,
                "messages": [{"role": "user", "content": "[sim slow delay=0.3] " + "z" * 200}]}
        with gw.http.stream("POST", f"{gw.base_url}/chat/completions", json=body,
                          headers=gw.headers(), timeout=30) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("data:"))
            assert json.loads(first[5:])["choices"][0]["delta"]["role"] == "assistant"
            pid = gw.readyz().json()["instances"][0]["pid"]
            os.kill(pid, signal.SIGKILL)
            rest = [line for line in lines if line.startswith("data:")]
        assert rest and "error" in json.loads(rest[-1][5:])  # an error chunk ends the stream
        assert "data: [DONE]" not in rest
        deadline = time.monotonic() + 5
        while gw.readyz().status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        # either we saw it not ready, or it already recovered with a new process
        recovered = gw.wait_ready(timeout=20)
        assert recovered["instances"][0]["pid"] != pid
        assert recovered["instances"][0]["restarts"] >= 1
        response = _chat(gw, {"model": "qwen3-coder", "messages": [{"role": "user", "content": "again"}]})
        assert response.json()["choices"][0]["message"]["content"] == "Echo: again"
    assert gw.process.returncode == 0
    assert simulator_pids(tmp_path) == []


@pytest.mark.slow
def test_hypercorn_worker_class_trio(tmp_path: Path) -> None:
    argv = ["hypercorn", "--worker-class", "trio", "--bind", "127.0.0.1:{port}", "trio_lingma.asgi:app"]
    argv[0] = str(Path(os.sys.executable).with_name("hypercorn"))
    with run_gateway(tmp_path, argv=argv) as gw:
        with openai.OpenAI(base_url=gw.base_url, api_key=API_KEY, max_retries=0) as client:
            completion = client.chat.completions.create(
                model="qwen3-coder", messages=[{"role": "user", "content": "via hypercorn"}])
        assert completion.choices[0].message.content == "Echo: via hypercorn"
    assert simulator_pids(tmp_path) == []
