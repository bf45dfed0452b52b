"""Slow clients are bounded by server timeouts (BODY_TIMEOUT), never holding a request forever."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from .e2e_support import run_gateway


def test_a_client_that_stops_mid_body_gets_408_within_body_timeout(tmp_path: Path) -> None:
    with run_gateway(tmp_path, env={"BODY_TIMEOUT": "1"}) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Authorization: Bearer sk-test-key\r\nContent-Length: 1000\r\n\r\n{\"model\":")
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head)  # ...and never the rest
            reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert time.monotonic() - started < 5
        assert gw.readyz().json()["in_flight"] == 0
