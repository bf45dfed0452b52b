"""The ASGI layer's decisions without a server: open access from a public address, the
connection table, the access line's parts (http/served.py, observability/access.py)."""

from __future__ import annotations

import trio
import trio.testing

from trio_lingma.http.app import create_app
from trio_lingma.http.served import ConnectionTable, connection_limit
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


async def test_keys_or_allow_open_or_loopback_serve_normally() -> None:
    for settings, scope in ((Settings(api_keys=("k",)), PUBLIC), (Settings(allow_open=True), PUBLIC),
                            (Settings(), {"server": ("127.0.0.1", 8317)}), (Settings(), {"server": ("::1", 1)})):
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
