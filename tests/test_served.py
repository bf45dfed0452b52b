"""The ASGI layer's decisions without a server: open access from a public address, the
connection table, the access line's parts (http/served.py, observability/access.py)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

from trio_lingma.http.app import create_app
from trio_lingma.http.served import ConnectionStatistics, ConnectionTable, connection_limit, install
from trio_lingma.observability.access import Exchange, error_summary, format_line
from trio_lingma.settings import Settings

PUBLIC = {"server": ("192.0.2.10", 8317)}  # TEST-NET-1: never contacted, only named in a scope


async def test_no_keys_and_a_public_server_address_refuses_all_but_probes() -> None:
    # hypercorn --bind 0.0.0.0 never reaches Settings.validate's HOST check: the address the
    # client reached is checked per request instead.
    client = create_app(Settings(api_keys=())).test_client()
    response = await client.get("/v1/models", scope_base=PUBLIC)
    assert response.status_code == 403
    message = (await response.get_json())["error"]["message"]
    assert "192.0.2.10" in message and "API_KEYS" in message and "ALLOW_OPEN" in message
    assert (await client.get("/healthz", scope_base=PUBLIC)).status_code == 200
    anthropic = await client.post("/v1/messages", json={}, scope_base=PUBLIC)
    assert anthropic.status_code == 403 and (await anthropic.get_json())["type"] == "error"
    mapped = await client.get("/v1/models", scope_base={"server": ("::ffff:192.0.2.10", 8317)})
    assert mapped.status_code == 403


async def test_keys_or_allow_open_or_loopback_serve_normally() -> None:
    for settings, scope in ((Settings(api_keys=("k",)), PUBLIC), (Settings(allow_open=True), PUBLIC),
                            (Settings(), {"server": ("127.0.0.1", 8317)}), (Settings(), {"server": ("::1", 1)}),
                            (Settings(), {"server": ("::ffff:127.0.0.1", 1)}), (Settings(), {"server": None})):
        response = await create_app(settings).test_client().get("/v1/nowhere", scope_base=scope)
        assert response.status_code in (401, 404), (settings, scope)


async def test_the_connection_table_admits_up_to_its_limit_and_frees_on_exit() -> None:
    table = ConnectionTable(limit=2)
    tasks: list[trio.lowlevel.Task] = []
    done = trio.Event()

    async def connection() -> None:
        tasks.append(trio.lowlevel.current_task())
        await done.wait()

    trio.lowlevel.add_instrument(table)
    try:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(connection)
            await trio.testing.wait_all_tasks_blocked()
            first, second, third = tasks
            assert table.admit(first) and table.admit(second) and table.admit(first)
            assert not table.admit(third) and len(table) == 2
            assert table.statistics() == ConnectionStatistics(open=2, limit=2, refused=1)
            done.set()
        assert len(table) == 0 and table.admit(third)
    finally:
        trio.lowlevel.remove_instrument(table)


def test_connection_limit_is_the_setting_or_derived_from_the_open_file_limit() -> None:
    assert connection_limit(5) == 5
    assert connection_limit(0) >= 16


def test_error_summary_reads_both_error_shapes() -> None:
    openai = b'{"error": {"message": "bad", "type": "invalid_request_error", "code": "x"}}'
    anthropic = b'{"type": "error", "error": {"type": "not_found_error", "message": "gone"}}'
    assert error_summary(openai) == "invalid_request_error: bad"
    assert error_summary(anthropic) == "not_found_error: gone"
    assert error_summary(b"not json") is None and error_summary(b"[1]") is None


def test_format_line_cuts_user_values_and_names_the_stream_outcome() -> None:
    exchange = Exchange(method="GET", path="/" + "p" * 500, status=404, error="e: m")
    line = format_line(exchange, 0.0123)
    assert line.startswith("GET /ppp") and "12.3ms" in line and "…" in line and len(line) < 200
    stream = Exchange(method="POST", path="/v1/messages", route="/v1/messages", status=200, stream=True,
                      finished=True, turn_ok=True, model="m")
    assert format_line(stream, 1) == "POST /v1/messages 200 1000.0ms model=m stream=completed"


# --- the keep-alive fix at exact virtual times: hypercorn in process, a MockClock -------------
# (the e2e proof on both entry points is tests/test_connections.py; this pins the mechanism)

KEEP_ALIVE = 15


def _tiny_app() -> QuartTrio:
    app = QuartTrio(__name__)

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    app.extensions["served"] = install(app, Settings(keep_alive_timeout=KEEP_ALIVE, access_log=False))
    return app


@asynccontextmanager
async def _served(app: QuartTrio) -> AsyncIterator[int]:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.keep_alive_timeout = KEEP_ALIVE
    config.accesslog = None
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        (bind,) = await nursery.start(functools.partial(serve, app, config, shutdown_trigger=shutdown.wait))
        yield int(bind.rsplit(":", 1)[1])
        shutdown.set()


async def _eof_after_response(port: int, request: bytes) -> float:
    """Virtual seconds from the end of the response to the server's EOF."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(request)
        data = b""
        while not data.endswith(b"pong"):
            data += await stream.receive_some()
        answered = trio.current_time()
        while await stream.receive_some():
            pass
        return trio.current_time() - answered


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # a short real-time threshold: loopback I/O in flight is never mistaken for idleness
    return trio.testing.MockClock(autojump_threshold=0.02)


async def test_keep_alive_closes_an_idle_connection_at_exactly_the_timeout(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(10 * KEEP_ALIVE):
        async with _served(_tiny_app()) as port:
            kept = await _eof_after_response(port, b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
            closed = await _eof_after_response(port, b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert kept == pytest.approx(KEEP_ALIVE, abs=0.01)
    assert closed == pytest.approx(0, abs=0.01)


async def test_an_idle_connection_the_client_closes_is_released_at_once(clock: trio.testing.MockClock) -> None:
    app = _tiny_app()
    connections = app.extensions["served"].connections
    with trio.fail_after(10 * KEEP_ALIVE):
        async with _served(app) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
            while not (await stream.receive_some()).endswith(b"pong"):
                pass
            await trio.sleep(KEEP_ALIVE / 3)  # idle for a while, then the client hangs up
            assert len(connections) == 1
            await stream.aclose()
            await trio.sleep(0.1)
            # released now, not when the keep-alive timer would fire (hypercorn alone: KEEP_ALIVE * 2/3 later)
            assert len(connections) == 0


async def test_access_log_false_writes_no_access_line(caplog: pytest.LogCaptureFixture) -> None:
    for enabled in (True, False):
        caplog.clear()
        client = create_app(Settings(access_log=enabled)).test_client()
        with caplog.at_level("INFO", logger="trio_lingma.access"):
            assert (await client.get("/healthz", headers={"x-request-id": "rid-1"})).status_code == 200
        lines = [r.getMessage() for r in caplog.records if r.name == "trio_lingma.access"]
        assert lines == ([lines[0]] if enabled else [])
        if enabled:
            assert lines[0].startswith("GET /healthz 200 ") and lines[0].endswith("ms")


async def test_readyz_without_an_admin_key_configured_never_shows_detail() -> None:
    client = create_app(Settings(admin_key="")).test_client()  # not serving: no instance is ready
    for headers in ({}, {"Authorization": "Bearer x"}, {"x-api-key": ""}):
        response = await client.get("/readyz", headers=headers)
        assert response.status_code == 503 and await response.get_json() == {"ready": False, "draining": False}
