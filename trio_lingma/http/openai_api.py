"""OpenAI-compatible routes: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Thin: parse with :mod:`trio_lingma.protocol.openai`, run the turn through the shared core,
render with the same module. Errors are rendered in OpenAI's shape by this blueprint's handler.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from quart import Blueprint, Response

from ..backend.gateway import EventStream
from ..errors import GatewayError
from ..protocol import openai, sse
from .common import check_auth, gateway, json_response, open_event_stream, open_turn, read_json

__all__ = ["blueprint", "render_error"]

blueprint = Blueprint("openai", __name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def render_error(exc: GatewayError) -> Response:
    return json_response(openai.error_body(exc), status=exc.status, retry_after=exc.retry_after)


@blueprint.before_request
async def _auth() -> None:
    check_auth()


@blueprint.errorhandler(GatewayError)
async def _error(exc: GatewayError) -> Response:
    return render_error(exc)


@blueprint.get("/v1/models")
async def list_models() -> Any:
    models = gateway().models()
    return openai.models_list([(m.id, m.display_name) for m in models], created=0)


@blueprint.post("/v1/chat/completions")
async def chat_completions() -> Any:
    chat = openai.parse_chat_request(await read_json())
    completion_id, created = openai.new_completion_id(), int(time.time())
    if not chat.stream:
        async with open_turn(chat) as stream:
            events = await stream.collect()
        return openai.build_completion(events, completion_id=completion_id, model=chat.model, created=created)

    heartbeat = gateway().settings.sse_ping_interval

    async def render(stream: EventStream) -> AsyncIterator[bytes]:
        chunks = openai.ChunkStream(completion_id=completion_id, model=chat.model, created=created,
                                     include_usage=chat.include_usage)
        yield sse.encode_event(chunks.first())
        while not stream.ended:
            events = await stream.receive(heartbeat=heartbeat)
            if not events and not stream.ended:
                yield sse.comment("keep-alive")
            frames = b"".join(chunks.frames(event) for event in events)
            if frames:
                yield frames  # what is ready together goes out in one write
        if chunks.succeeded:
            yield sse.DONE

    def on_error(exc: GatewayError) -> bytes:
        return sse.encode_event(openai.error_body(exc))

    body = await open_event_stream(chat, render, on_error)
    return Response(body, content_type="text/event-stream", headers=SSE_HEADERS)
