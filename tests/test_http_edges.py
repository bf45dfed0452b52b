"""The HTTP surface's edges against a real gateway process: WebSocket upgrades, what /readyz
tells whom, reflected values in errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio
import trio_websocket

from .e2e_support import RunningGateway, run_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with run_gateway(tmp_path_factory.mktemp("edges")) as gateway:
        yield gateway


def _log_lines(gw: RunningGateway) -> list[str]:
    return gw.log().splitlines()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/nowhere"])
async def test_a_websocket_upgrade_gets_a_quiet_404(gw: RunningGateway, path: str) -> None:
    port = int(gw.url.rsplit(":", 1)[1])
    before = _log_lines(gw)
    # our own stream: trio-websocket does not close its socket when the server rejects
    with trio.fail_after(10), pytest.RaisesGroup(trio_websocket.ConnectionRejected) as rejected:
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream, trio.open_nursery() as nursery:
            await trio_websocket.wrap_client_stream(nursery, stream, f"127.0.0.1:{port}", path)
    (error,) = rejected.value.exceptions
    assert isinstance(error, trio_websocket.ConnectionRejected) and error.status_code == 404
    assert b"No WebSocket endpoint at " + path.encode() in (error.body or b"")
    if path.startswith("/v1/messages"):  # each API's own error shape
        assert b'"type": "error"' in (error.body or b"")
    await trio.sleep(0.2)  # let anything the gateway would log reach the file
    # (the access line of an earlier request may land late: it is written after the response)
    new = [line for line in _log_lines(gw)[len(before):] if "GET /readyz 200" not in line]
    assert len(new) <= 1 and all(f"WEBSOCKET {path} 404" in line for line in new), new
    assert "Traceback" not in gw.log()


def test_readyz_says_only_ready_without_the_admin_key(gw: RunningGateway) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-key"}, gw.headers()):
        response = gw.http.get(f"{gw.url}/readyz", headers=headers, timeout=5)
        assert response.status_code == 200
        assert response.json() == {"ready": True, "draining": False}
    detail = gw.readyz().json()  # with the admin key
    assert detail["instances"][0]["pid"] > 0 and detail["instances"][0]["ws_port"] > 0


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
def test_a_huge_model_name_is_not_echoed_whole(gw: RunningGateway, route: str) -> None:
    model = "m" * 100_000
    body = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    response = gw.http.post(gw.url + route, json=body, headers=gw.headers(), timeout=30)
    assert response.status_code == 404, response.text
    assert len(response.content) < 1000
    assert "m" * 199 + "…" in response.text and "m" * 201 not in response.text


def test_a_huge_unknown_path_is_not_echoed_whole(gw: RunningGateway) -> None:
    response = gw.http.get(f"{gw.url}/v1/{'x' * 5000}", headers=gw.headers(), timeout=10)
    assert response.status_code == 404 and len(response.content) < 1000
    assert "…" in response.json()["error"]["message"]
