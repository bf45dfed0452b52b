"""The trivial-route floor: what hypercorn + quart-trio cost per request with no gateway in it.

``python tools/_floor.py`` serves one quart-trio app under ``hypercorn.trio.serve`` with the
gateway's hypercorn settings (``trio_lingma.cli.serve``: no access log) on 127.0.0.1 and an
ephemeral port, prints ``{"port": N}`` and runs until stdin closes. Its one route,
``POST /v1/chat/completions``, reads the JSON body and answers a fixed completion — what any
app on this stack pays per request. bench.py measures its CPU per request next to the
gateway's, in the same run, so the gateway's own overhead is the difference.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import request
from quart_trio import QuartTrio

ANSWER = {"id": "chatcmpl-floor", "object": "chat.completion", "created": 0, "model": "floor",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                       "finish_reason": "stop"}]}


def create_app() -> QuartTrio:
    app = QuartTrio(__name__)

    @app.post("/v1/chat/completions")
    async def completions() -> Any:
        await request.get_json()
        return ANSWER

    return app


async def main() -> None:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(_serve, create_app(), config, shutdown)
        print(json.dumps({"port": int(binds[0].rsplit(":", 1)[1])}), flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes our stdin
        shutdown.set()


async def _serve(app: QuartTrio, config: Config, shutdown: trio.Event, *,
                 task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)  # type: ignore[arg-type]


if __name__ == "__main__":
    trio.run(main)
