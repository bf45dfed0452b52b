"""Client connections end when they should, against real gateway processes served both ways
(``trio-lingma serve`` and the hypercorn CLI): ``Connection: close`` gets EOF, an idle kept-alive
connection is closed after KEEP_ALIVE_TIMEOUT, a request whose body the gateway did not read
ends its connection, and MAX_CONNECTIONS caps the connections served at once."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .e2e_support import API_KEY, RunningGateway, run_gateway

KEEP_ALIVE = 1
SEND_TIMEOUT = 2
HYPERCORN = [sys.executable, "-m", "hypercorn", "--worker-class", "trio", "--bind", "127.0.0.1:{port}",
             "--keep-alive", str(KEEP_ALIVE), "trio_lingma.asgi:app"]


@pytest.fixture(scope="module", params=["serve", "hypercorn"])
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    argv = HYPERCORN if request.param == "hypercorn" else None
    env = {"KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE), "MAX_CONNECTIONS": "6", "SEND_TIMEOUT": str(SEND_TIMEOUT)}
    with run_gateway(tmp_path_factory.mktemp(request.param), env=env, argv=argv) as gateway:
        yield gateway


def _connect(gw: RunningGateway) -> socket.socket:
    host, port = gw.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.settimeout(10)
    return sock


def _request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _response(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """Read one response with a Content-Length body; its status and headers."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"EOF before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    missing = int(headers.get("content-length", "0")) - len(rest)
    while missing > 0:
        chunk = sock.recv(missing)
        assert chunk
        missing -= len(chunk)
    return int(status_line.split()[1]), headers


def _seconds_to_eof(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the gateway closes the connection (None: still open after ``timeout``)."""
    sock.settimeout(timeout)
    started = time.monotonic()
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_connection_close_gets_eof_at_once(gw: RunningGateway) -> None:
    with _connect(gw) as sock:
        sock.sendall(_request("GET", "/healthz", "Connection: close"))
        assert _response(sock)[0] == 200
        waited = _seconds_to_eof(sock, 5)
        assert waited is not None and waited < KEEP_ALIVE / 2


def test_an_idle_kept_alive_connection_is_closed_after_keep_alive_timeout(gw: RunningGateway) -> None:
    with _connect(gw) as sock:
        for _ in range(2):  # the connection is reused, then left idle
            sock.sendall(_request("GET", "/healthz"))
            assert _response(sock)[0] == 200
        waited = _seconds_to_eof(sock, 10 * KEEP_ALIVE)
        assert waited is not None and KEEP_ALIVE * 0.8 < waited < KEEP_ALIVE * 3


def test_an_error_before_the_body_was_read_ends_the_connection(gw: RunningGateway) -> None:
    with _connect(gw) as sock:  # 401 before the body: the connection cannot be reused
        sock.sendall(_request("POST", "/v1/chat/completions", "Content-Length: 5"))
        status, headers = _response(sock)
        assert status == 401 and headers["connection"] == "close"
        waited = _seconds_to_eof(sock, 5)
        assert waited is not None and waited < KEEP_ALIVE / 2


def test_a_client_that_stops_reading_a_stream_is_dropped_after_send_timeout(gw: RunningGateway) -> None:
    body = json.dumps({"model": "qwen3-coder", "stream": True,
                       "messages": [{"role": "user", "content": "[sim long chunks=20000] go"}]}).encode()
    with _connect(gw) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(_request("POST", "/v1/chat/completions", f"Authorization: Bearer {API_KEY}",
                              "Content-Type: application/json", body=body))
        assert sock.recv(12) == b"HTTP/1.1 200"
        started = time.monotonic()  # ...and never read again: the stream stalls on a full window
        while gw.readyz().json()["in_flight"] and time.monotonic() - started < 20:
            time.sleep(0.2)
        freed = time.monotonic() - started
        assert gw.readyz().json()["in_flight"] == 0
        assert SEND_TIMEOUT * 0.8 < freed < SEND_TIMEOUT * 4, freed  # not at once, not never


def test_max_connections_answers_503_on_new_connections_until_one_closes(gw: RunningGateway) -> None:
    auth = f"Authorization: Bearer {API_KEY}"
    held = [_connect(gw) for _ in range(6)]
    try:
        for sock in held:  # six connections, each kept alive after a request
            sock.sendall(_request("GET", "/v1/models", auth))
            assert _response(sock)[0] == 200
        with _connect(gw) as extra:
            extra.sendall(_request("GET", "/v1/models", auth))
            status, headers = _response(extra)
            assert status == 503 and headers["retry-after"] == "1" and headers["connection"] == "close"
            assert _seconds_to_eof(extra, 5) is not None
        for path in ("/healthz", "/metrics"):  # probes and operator endpoints are answered, then let go
            with _connect(gw) as probe:
                probe.sendall(_request("GET", path))
                status, headers = _response(probe)
                assert status == 200 and headers["connection"] == "close"
        with _connect(gw) as probe:
            probe.sendall(_request("GET", "/metrics"))
            probe.settimeout(5)
            metrics = b""
            while chunk := probe.recv(65536):
                metrics += chunk
        assert b"trio_lingma_client_connections 6.0" in metrics
        assert b"trio_lingma_client_connections_limit 6.0" in metrics
        assert b"trio_lingma_client_connections_refused_total 4.0" in metrics  # 503, 2 probes, this
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the freed place is taken by the next new connection
            with _connect(gw) as fresh:
                fresh.sendall(_request("GET", "/v1/models", auth, "Connection: close"))
                if _response(fresh)[0] == 200:
                    break
            assert time.monotonic() < deadline, "the closed connection's place was never freed"
            time.sleep(0.05)
    finally:
        for sock in held:
            sock.close()


@pytest.mark.slow
def test_the_idle_connections_tool_runs_small(tmp_path: Path) -> None:
    import subprocess

    tool = Path(__file__).resolve().parent.parent / "tools" / "idle_conns.py"
    done = subprocess.run([sys.executable, str(tool), "--connections", "40", "--keep-alive", "1",
                           "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "idle connections: ok" in done.stdout and '"closed_by_gateway": 40' in done.stdout
    # clients that hang up themselves are released at once, not at the (long) keep-alive timeout
    done = subprocess.run([sys.executable, str(tool), "--connections", "40", "--keep-alive", "60", "--hang-up",
                           "0.5", "--workdir", str(tmp_path / "hang-up")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"closed_by_client": 40' in done.stdout
