"""The OpenAI Responses API: ``POST /v1/responses``, ``GET``/``DELETE /v1/responses/{id}``.

Thin, like the chat completions route: parse with :mod:`trio_lingma.protocol.responses`, run
the turn through the shared core (auth, admission, sessions, client tools, stats), render with
the same module. Errors have OpenAI's shape. Finished responses are kept in the app's
:class:`~trio_lingma.protocol.responses.ResponseStore` (``RESPONSES_STORE_SIZE``) so
``previous_response_id`` can continue them: the stored conversation plus the new input is an
ordinary request, whose prefix finds the upstream session the previous turn left in the session
cache.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from quart import Blueprint, Response, current_app, request

from ..backend.gateway import EventStream
from ..errors import GatewayError, InvalidRequest, NotFound
from ..protocol import responses, responses_store, sse
from .common import check_auth, gateway, json_response, open_event_stream, open_turn, read_json
from .openai_api import SSE_HEADERS, render_error

__all__ = ["blueprint"]

blueprint = Blueprint("responses", __name__)


@blueprint.before_request
async def _auth() -> None:
    check_auth()


@blueprint.errorhandler(GatewayError)
async def _error(exc: GatewayError) -> Response:
    return render_error(exc)


def _store() -> responses.ResponseStore:
    store: responses.ResponseStore = current_app.extensions.setdefault(
        "trio_lingma.responses", responses.ResponseStore(gateway().settings.responses_store_size))
    return store


@blueprint.post("/v1/responses")
async def create_response() -> Any:
    store = _store()
    request = responses.parse_responses_request(await read_json(), lookup=store.conversation)
    response_id, created = responses.new_response_id(), int(time.time())
    chat = request.chat
    if not chat.stream:
        async with open_turn(chat) as stream:
            events = await stream.collect()
        response = responses.build_response(events, request, response_id=response_id, created=created)
        store.keep(request, response)
        return response

    heartbeat = gateway().settings.sse_ping_interval
    rendered = responses.ResponseStream(request, response_id=response_id, created=created)

    async def render(stream: EventStream) -> AsyncIterator[bytes]:
        for opening in rendered.start():
            yield _encode(opening)
        while not stream.ended:
            events = await stream.receive(heartbeat=heartbeat)
            if not events and not stream.ended:
                yield sse.comment("keep-alive")
            for event in events:
                for out in rendered.feed(event):
                    yield _encode(out)
        if rendered.done:
            store.keep(request, rendered.response)

    def on_error(exc: GatewayError) -> bytes:
        return b"".join(_encode(event) for event in rendered.fail(exc))

    body = await open_event_stream(chat, render, on_error)
    return Response(body, content_type="text/event-stream", headers=SSE_HEADERS)


def _encode(event: dict[str, Any]) -> bytes:
    return sse.encode_event(event, event=event["type"])


def _stored(response_id: str) -> responses.StoredResponse:
    found = _store().get(response_id)
    if found is None:
        raise NotFound(f"Response with id {response_id[:100]!r} not found.", param="response_id")
    return found


@blueprint.get("/v1/responses/<response_id>")
async def get_response(response_id: str) -> Any:
    return _stored(response_id).response


@blueprint.get("/v1/responses/<response_id>/input_items")
async def list_input_items(response_id: str) -> Any:
    found = _stored(response_id)
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(f"order: must be one of asc, desc (got {order[:40]!r})", param="order")
    limit = request.args.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= 100:
        raise InvalidRequest(f"limit: must be an integer between 1 and 100 (got {limit[:40]!r})", param="limit")
    return responses_store.input_items_page(found.input_items, order=order, limit=int(limit),
                                            after=request.args.get("after"))


@blueprint.delete("/v1/responses/<response_id>")
async def delete_response(response_id: str) -> Any:
    if not _store().delete(response_id):
        raise NotFound(f"Response with id {response_id[:100]!r} not found.", param="response_id")
    return json_response({"id": response_id, "object": "response", "deleted": True})
