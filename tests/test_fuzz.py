"""Fuzzing both wire APIs' request bodies and headers against a real gateway (hypothesis).

Whatever arrives, the gateway answers below 500, in the protocol's own error shape when it
refuses, and never hangs: every request runs under a client timeout that is longer than the
gateway's own deadlines. Oversize bodies get 413 (with and without ``Content-Length``); a
client that stalls in the middle of its request head is disconnected by the server.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .e2e_support import API_KEY, RunningGateway, run_gateway

MAX_BODY = 16_384
TIMEOUT = 20.0  # > FIRST_TOKEN_TIMEOUT and IDLE_TIMEOUT below: a timeout here is a hang
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    env = {"MAX_BODY_BYTES": str(MAX_BODY), "FIRST_TOKEN_TIMEOUT": "5", "IDLE_TIMEOUT": "5",
           "LINGMA_CONCURRENCY": "8", "LOG_LEVEL": "WARNING"}
    with run_gateway(tmp_path_factory.mktemp("fuzz"), env=env) as gw:
        yield gw


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT) as c:
        yield c


# -- strategies -----------------------------------------------------------------------------

# Text without simulator directives: "[sim crash]" would be a scripted failure, not fuzzing.
text = st.text(max_size=40).filter(lambda s: "[sim" not in s)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values, sometimes anything at all."""
    return st.one_of(valid, valid, valid, json_values)


models = maybe(st.sampled_from(["qwen3-coder", "qwen3-thinking", "qwen3-coder:chat", "no-such"]))
roles = st.sampled_from(["user", "assistant", "system", "developer", "tool", "function", "x"])
openai_parts = st.lists(st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(["text", "image_url"])), "text": maybe(text)},
    optional={"image_url": maybe(st.fixed_dictionaries({"url": maybe(text)}))}), max_size=3)
openai_messages = st.lists(st.fixed_dictionaries(
    {"role": maybe(roles), "content": maybe(text | openai_parts)},
    optional={"name": maybe(text), "tool_call_id": maybe(text), "tool_calls": json_values}),
    max_size=4)
openai_tools = st.lists(st.fixed_dictionaries({"type": maybe(st.just("function")),
    "function": maybe(st.fixed_dictionaries({"name": maybe(text),
                                             "parameters": maybe(st.just({"type": "object"}))}))}),
    max_size=2)
openai_bodies = st.fixed_dictionaries({"model": models, "messages": maybe(openai_messages)}, optional={
    "stream": maybe(st.booleans()), "max_tokens": maybe(st.integers(-5, 5000)),
    "max_completion_tokens": maybe(st.integers(-5, 5000)), "temperature": json_values,
    "stop": maybe(text | st.lists(text, max_size=5)), "n": maybe(st.integers(0, 3)),
    "tools": maybe(openai_tools), "tool_choice": json_values, "stream_options": json_values,
    "response_format": json_values, "user": json_values, "seed": json_values,
})
anthropic_blocks = st.lists(st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking"]))},
    optional={"text": maybe(text), "id": maybe(text), "name": maybe(text), "input": json_values,
              "tool_use_id": maybe(text), "content": json_values, "source": json_values}),
    max_size=3)
anthropic_messages = st.lists(st.fixed_dictionaries(
    {"role": maybe(st.sampled_from(["user", "assistant", "system"])),
     "content": maybe(text | anthropic_blocks)}), max_size=4)
anthropic_bodies = st.fixed_dictionaries({"model": models, "messages": maybe(anthropic_messages)},
                                         optional={
    "max_tokens": maybe(st.integers(-5, 5000)), "stream": maybe(st.booleans()),
    "system": maybe(text | anthropic_blocks), "stop_sequences": maybe(st.lists(text, max_size=5)),
    "tools": json_values, "tool_choice": json_values, "thinking": json_values,
    "metadata": json_values, "temperature": json_values, "top_k": json_values,
})
responses_items = st.lists(st.one_of(
    st.fixed_dictionaries({"role": maybe(roles), "content": maybe(text | st.lists(st.fixed_dictionaries(
        {"type": maybe(st.sampled_from(["input_text", "output_text", "input_image", "refusal"]))},
        optional={"text": maybe(text), "image_url": maybe(text)}), max_size=2))},
        optional={"type": maybe(st.just("message"))}),
    st.fixed_dictionaries({"type": maybe(st.sampled_from(["function_call", "function_call_output", "reasoning",
                                                          "web_search_call"]))},
                          optional={"call_id": maybe(text), "name": maybe(text), "arguments": maybe(text),
                                    "output": maybe(text), "summary": json_values})), max_size=4)
responses_bodies = st.fixed_dictionaries({"model": models, "input": maybe(text | responses_items)}, optional={
    "stream": maybe(st.booleans()), "instructions": maybe(text), "max_output_tokens": maybe(st.integers(-5, 5000)),
    "tools": maybe(st.lists(st.fixed_dictionaries({"type": maybe(st.sampled_from(["function", "web_search"])),
                                                   "name": maybe(text)}), max_size=2)),
    "tool_choice": json_values, "reasoning": json_values, "text": json_values, "store": json_values,
    "previous_response_id": maybe(text), "include": json_values, "metadata": json_values,
})
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.strip)
extra_headers = st.dictionaries(
    st.from_regex(r"\Ax-[a-z][a-z0-9-]{0,20}\Z"), header_values, max_size=3)
auth_headers = st.sampled_from([
    {"Authorization": f"Bearer {API_KEY}"}, {"x-api-key": API_KEY}, {},
    {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}, {"x-api-key": ""},
    {"Authorization": f"Basic {API_KEY}"}, {"Authorization": f"bearer  {API_KEY}"},
])
common_headers = st.fixed_dictionaries({}, optional={
    "Content-Type": st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                     "application/json; charset=latin-1", "multipart/form-data"]),
    "anthropic-version": header_values, "anthropic-beta": header_values,
    "x-request-id": header_values, "Accept": header_values, "Accept-Encoding": header_values,
})


# -- checks ---------------------------------------------------------------------------------


def error_shaped(path: str, body: Any) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return False
    err = body["error"]
    if path.startswith("/v1/messages"):
        return body.get("type") == "error" and isinstance(err.get("type"), str) \
            and isinstance(err.get("message"), str)
    return isinstance(err.get("message"), str) and isinstance(err.get("type"), str)


def send(client: httpx.Client, gw: RunningGateway, path: str, content: bytes,
         headers: dict[str, str]) -> None:
    """One request; fails on >= 500, a badly shaped error, a cut stream or a hang."""
    started = time.monotonic()
    # One connection per request: see test_early_error_then_keep_alive_request for why.
    headers = {**headers, "Connection": "close"}
    with client.stream("POST", gw.url + path, content=content, headers=headers) as response:
        body = response.read()  # a hang raises httpx.ReadTimeout after TIMEOUT
    assert response.status_code < 500, (response.status_code, body[:500], content[:300])
    assert time.monotonic() - started < TIMEOUT
    if response.status_code >= 400:
        assert error_shaped(path, json.loads(body)), body[:500]
    elif response.headers.get("content-type", "").startswith("text/event-stream"):
        assert b"\n\n" in body and not body.rstrip().endswith(b"data:"), body[-300:]


# -- tests ----------------------------------------------------------------------------------


@FUZZ
@given(body=openai_bodies, auth=auth_headers, headers=common_headers, extra=extra_headers)
def test_openai_bodies_and_headers(gateway: RunningGateway, client: httpx.Client, body: Any,
                                   auth: dict[str, str], headers: dict[str, str],
                                   extra: dict[str, str]) -> None:
    send(client, gateway, "/v1/chat/completions", json.dumps(body).encode(),
         {**extra, **headers, **auth})


@FUZZ
@given(body=anthropic_bodies, auth=auth_headers, headers=common_headers, extra=extra_headers,
       path=st.sampled_from(["/v1/messages", "/v1/messages/count_tokens"]))
def test_anthropic_bodies_and_headers(gateway: RunningGateway, client: httpx.Client, body: Any,
                                      auth: dict[str, str], headers: dict[str, str],
                                      extra: dict[str, str], path: str) -> None:
    send(client, gateway, path, json.dumps(body).encode(), {**extra, **headers, **auth})


@FUZZ
@given(body=responses_bodies, auth=auth_headers, headers=common_headers)
def test_responses_bodies_and_headers(gateway: RunningGateway, client: httpx.Client, body: Any,
                                      auth: dict[str, str], headers: dict[str, str]) -> None:
    send(client, gateway, "/v1/responses", json.dumps(body).encode(), {**headers, **auth})


raw_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    openai_bodies.map(lambda b: json.dumps(b).encode()[: len(json.dumps(b)) // 2]),
    st.just(b'{"model": "qwen3-coder", "messages": [{"role": "user", "content": "\\ud800"}]}'),
    st.just(b'{"model": "qwen3-coder", "messages": [' * 2000),
)


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=raw_bodies, path=st.sampled_from(
    ["/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/messages/count_tokens"]))
def test_raw_bodies(gateway: RunningGateway, client: httpx.Client, content: bytes,
                    path: str) -> None:
    send(client, gateway, path, content, {"x-api-key": API_KEY})


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize("chunked", [False, True])
def test_oversize_body_is_413(gateway: RunningGateway, client: httpx.Client, path: str,
                              chunked: bool) -> None:
    big = json.dumps({"model": "qwen3-coder", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "x" * (MAX_BODY * 2)}]}).encode()
    content: Any = iter([big[i:i + 4096] for i in range(0, len(big), 4096)]) if chunked else big
    response = client.post(gateway.url + path, content=content, headers={"x-api-key": API_KEY})
    assert response.status_code == 413
    assert error_shaped(path, response.json())


def test_stalled_request_head_is_disconnected(gateway: RunningGateway) -> None:
    """A client that never finishes its request head does not hold a connection forever."""
    port = int(gateway.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server (hypercorn keep-alive timeout)
        assert time.monotonic() - started < TIMEOUT


def test_early_error_closes_the_connection_instead_of_wedging_it(gateway: RunningGateway) -> None:
    """A 401 sent after the head but before the body arrived: hypercorn 0.18 (h11) would wedge
    the keep-alive connection (reproduced with a minimal quart-trio app), so the gateway answers
    errors to requests with a body with ``Connection: close``; the client's next request goes on
    a new connection and is answered."""
    port = int(gateway.url.rsplit(":", 1)[1])
    body = b'{"model": "qwen3-coder"}'
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer no"
            b"\r\nContent-Length: %d\r\n\r\n" % len(body))
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(head)
            time.sleep(0.05)  # the 401 goes out before the body arrives
            sock.sendall(body)
            reply = b""
            while not reply.endswith(b"}"):  # the whole JSON error body; socket.timeout = a hang
                chunk = sock.recv(4096)
                assert chunk
                reply += chunk
        # a client must not reuse this connection: the next request goes on a new one (loop)
        assert reply.startswith(b"HTTP/1.1 401") and b"connection: close" in reply.lower()


def test_gateway_still_healthy_after_fuzzing(gateway: RunningGateway, client: httpx.Client) -> None:
    response = client.post(f"{gateway.base_url}/chat/completions", headers=gateway.headers(),
                           json={"model": "qwen3-coder",
                                 "messages": [{"role": "user", "content": "still there?"}]})
    assert response.status_code == 200
    ready = gateway.readyz().json()
    assert ready["in_flight"] == 0 and ready["queued"] == 0
    assert "Traceback" not in gateway.log()
