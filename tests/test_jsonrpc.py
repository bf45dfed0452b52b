"""Sans-IO JSON-RPC: framing, classification, and two Peers talking over a fake link."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_lingma.protocol.jsonrpc import (
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    ErrorResponse,
    FrameDecoder,
    FrameTooLarge,
    FramingError,
    Invalid,
    Notification,
    Peer,
    ProtocolError,
    Received,
    Request,
    Response,
    RpcError,
    encode_frame,
    parse_message,
    serialize,
)


def frame(obj: object) -> str:
    return encode_frame(json.dumps(obj, ensure_ascii=False).encode())


def raw_frame(body: bytes, header: bytes | None = None) -> bytes:
    return (header or b"Content-Length: %d" % len(body)) + b"\r\n\r\n" + body


MESSAGES = [
    {"jsonrpc": "2.0", "id": 1, "method": "chat/ask", "params": {"questionText": "你好，世界 😀"}},
    {"jsonrpc": "2.0", "method": "chat/answer", "params": {"text": "ça va? 🎉🎉"}},
    {"jsonrpc": "2.0", "id": 1, "result": {"isSuccess": True}},
    {"jsonrpc": "2.0", "id": 7, "error": {"code": -32601, "message": "nope"}},
]
STREAM = "".join(frame(m) for m in MESSAGES).encode()


# --- framing ----------------------------------------------------------------------------------


def test_content_length_counts_utf8_bytes() -> None:
    body = '{"t":"中文😀"}'.encode()
    assert len(body) != len(body.decode())
    assert encode_frame(body) == f"Content-Length: {len(body)}\r\n\r\n" + body.decode()
    assert FrameDecoder().feed(encode_frame(body)) == [body]


def test_split_at_every_byte_position() -> None:
    for i in range(len(STREAM) + 1):
        decoder = FrameDecoder()
        bodies = decoder.feed(STREAM[:i]) + decoder.feed(STREAM[i:])
        assert [json.loads(b) for b in bodies] == MESSAGES, i
        assert decoder.buffered == 0


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_any_chunking_yields_the_same_messages(cuts: list[int]) -> None:
    points = sorted({0, len(STREAM), *cuts})
    decoder = FrameDecoder()
    bodies = [b for a, z in zip(points, points[1:], strict=False) for b in decoder.feed(STREAM[a:z])]
    assert [json.loads(b) for b in bodies] == MESSAGES


def test_several_messages_in_one_frame() -> None:
    assert len(FrameDecoder().feed(STREAM.decode())) == len(MESSAGES)


def test_str_and_bytes_give_the_same_bodies() -> None:
    text = STREAM.decode()
    assert FrameDecoder().feed(text) == FrameDecoder().feed(STREAM)


def test_str_chunks_split_inside_a_multibyte_character() -> None:
    # A str can't split a character, but bytes can: the decoder waits for the rest.
    body = '{"t":"😀"}'.encode()
    data = raw_frame(body)
    decoder = FrameDecoder()
    assert decoder.feed(data[:-4]) == []
    assert decoder.feed(data[-4:]) == [body]


def test_header_with_extra_fields() -> None:
    body = b'{"jsonrpc":"2.0","method":"x"}'
    header = b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8" % len(body)
    assert FrameDecoder().feed(raw_frame(body, header)) == [body]


def test_header_name_is_case_insensitive() -> None:
    assert FrameDecoder().feed(raw_frame(b"{}", b"content-length:2")) == [b"{}"]


def test_stray_line_ends_between_messages_are_tolerated_even_when_split() -> None:
    data = raw_frame(b"{}") + b"\r\n" + raw_frame(b"[]")
    for i in range(len(data) + 1):
        decoder = FrameDecoder()
        assert decoder.feed(data[:i]) + decoder.feed(data[i:]) == [b"{}", b"[]"], i


def test_zero_length_body() -> None:
    assert FrameDecoder().feed(b"Content-Length: 0\r\n\r\n") == [b""]


def test_unframed_json_is_rejected_then_the_decoder_recovers() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FramingError, match="Unknown message header"):
        decoder.feed('{"jsonrpc":"2.0","method":"x"}')
    assert decoder.buffered == 0
    assert decoder.feed(frame({"ok": 1})) == [b'{"ok": 1}']


def test_unframed_json_is_rejected_even_before_it_is_complete() -> None:
    with pytest.raises(FramingError):
        FrameDecoder().feed("{")


@pytest.mark.parametrize(
    "header",
    [b"Content-Length: abc", b"Content-Length: -1", b"Content-Length: +2", b"Content-Length: 1_0",
     b"Content-Length: \xd9\xa2", b"Content-Length 2", b"Content-Type: text/plain"],
)
def test_bad_content_length_is_a_framing_error(header: bytes) -> None:
    decoder = FrameDecoder()
    with pytest.raises(FramingError):
        decoder.feed(raw_frame(b"{}", header))
    assert decoder.buffered == 0
    assert decoder.feed(raw_frame(b"{}")) == [b"{}"]


def test_endless_header_is_a_framing_error() -> None:
    with pytest.raises(FramingError, match="too long"):
        FrameDecoder().feed(b"X" * 2000)


def test_messages_before_bad_bytes_are_kept_on_the_error() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FramingError) as info:
        decoder.feed(raw_frame(b"{}") + raw_frame(b"[]") + b'{"unframed":1}')
    assert info.value.bodies == (b"{}", b"[]")


# --- classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"jsonrpc": "2.0", "id": 3, "method": "m", "params": [1]}, Request(id=3, method="m", params=[1])),
        ({"jsonrpc": "2.0", "id": "a", "method": "m"}, Request(id="a", method="m")),
        ({"jsonrpc": "2.0", "method": "m", "params": {"a": 1}}, Notification(method="m", params={"a": 1})),
        ({"jsonrpc": "2.0", "id": None, "method": "m"}, Notification(method="m")),
        ({"jsonrpc": "2.0", "id": 3, "result": None}, Response(id=3, result=None)),
        ({"jsonrpc": "2.0", "id": 3, "result": {"x": 1}, "error": None}, Response(id=3, result={"x": 1})),
        ({"jsonrpc": "2.0", "id": 4, "error": {"code": -32601, "message": "no", "data": [1]}},
         ErrorResponse(id=4, error=RpcError(code=METHOD_NOT_FOUND, message="no", data=[1]))),
        ({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse"}},
         ErrorResponse(id=None, error=RpcError(code=-32700, message="parse"))),
        ({"jsonrpc": "2.0", "id": 5, "error": "boom"},
         ErrorResponse(id=5, error=RpcError(code=INTERNAL_ERROR, message="boom"))),
    ],
)
def test_classification(body: dict[str, object], expected: object) -> None:
    assert parse_message(json.dumps(body).encode()) == expected


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1,2]", b'"str"', b"\xff\xfe{}", b'{"jsonrpc":"2.0"}', b'{"method":5}',
     b'{"id":true,"result":1}', b'{"id":[1],"error":{"code":1,"message":"x"}}',
     b'{"id":{"a":1},"method":"m"}', b"[" * 100_000, b'{"id":1,"result":' + b"9" * 5000 + b"}"],
)
def test_bodies_that_are_not_jsonrpc_are_protocol_errors(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_message(body)


@pytest.mark.parametrize(
    "msg",
    [Request(id=1, method="m", params={}), Request(id="x", method="m", params={"a": "中"}),
     Notification(method="n", params=[1]), Response(id=1), Response(id=2, result=[1]),
     ErrorResponse(id=None, error=RpcError(code=-1, message="e", data={"d": 1}))],
)
def test_serialize_round_trips_and_names_the_version(msg: object) -> None:
    body = serialize(msg)  # type: ignore[arg-type]
    assert json.loads(body)["jsonrpc"] == "2.0"
    assert parse_message(body) == msg


def test_parameterless_calls_send_an_empty_object() -> None:
    # A Go runtime refuses other shapes ("cannot unmarshal array into Go value of type struct {}").
    assert json.loads(serialize(Request(id=1, method="auth/status")))["params"] == {}
    assert json.loads(serialize(Notification(method="exit")))["params"] == {}
    assert json.loads(Peer().send_request("ping")[1].split("\r\n\r\n", 1)[1])["params"] == {}


def test_serialize_keeps_non_ascii_as_utf8() -> None:
    assert "中".encode() in serialize(Notification(method="n", params="中"))


def test_response_always_has_a_result_member() -> None:
    assert json.loads(serialize(Response(id=1))) == {"jsonrpc": "2.0", "id": 1, "result": None}


# --- peers over a fake link -------------------------------------------------------------------


class Link:
    """Two peers; what one sends is delivered to the other in arbitrary pieces."""

    def __init__(self) -> None:
        self.client = Peer()
        self.server = Peer(first_id=100)

    @staticmethod
    def deliver(peer: Peer, frames: list[str]) -> list[Received]:
        data = "".join(frames).encode()
        out: list[Received] = []
        for i in range(0, len(data), 5):  # 5-byte pieces: splits headers and characters
            out += peer.receive_data(data[i : i + 5])
        return out


def test_interleaved_requests_are_matched_to_their_methods() -> None:
    link = Link()
    sent = [link.client.send_request(m, {"n": i}) for i, m in enumerate(["initialize", "chat/ask", "ping"])]
    assert [id_ for id_, _ in sent] == [1, 2, 3]
    assert link.client.pending == {1: "initialize", 2: "chat/ask", 3: "ping"}

    requests = link.deliver(link.server, [f for _, f in sent])
    assert requests == [Request(id=i + 1, method=m, params={"n": i})
                        for i, m in enumerate(["initialize", "chat/ask", "ping"])]
    assert link.server.pending == {}

    # The server answers in reverse order, with its own requests and a notification between.
    server_req_id, server_req = link.server.send_request("tool/invoke", {"name": "ls"})
    frames = [
        link.server.send_result(3, "pong"),
        server_req,
        link.server.send_notification("chat/answer", {"text": "好"}),
        link.server.send_error(2, METHOD_NOT_FOUND, "no chat"),
        link.server.send_result(1, {"ok": True}),
    ]
    got = link.deliver(link.client, frames)
    assert got == [
        Response(id=3, result="pong", method="ping"),
        Request(id=server_req_id, method="tool/invoke", params={"name": "ls"}),
        Notification(method="chat/answer", params={"text": "好"}),
        ErrorResponse(id=2, error=RpcError(code=METHOD_NOT_FOUND, message="no chat"), method="chat/ask"),
        Response(id=1, result={"ok": True}, method="initialize"),
    ]
    assert link.client.pending == {}

    # The client answers the server's request; the server matches it.
    answer = link.client.send_result(server_req_id, {"done": 1})
    assert link.deliver(link.server, [answer]) == [
        Response(id=server_req_id, result={"done": 1}, method="tool/invoke")
    ]
    assert link.server.pending == {}


def test_late_answer_after_forget_has_no_method() -> None:
    link = Link()
    id_, req = link.client.send_request("chat/ask")
    link.client.forget(id_)
    link.client.forget(12345)  # forgetting an unknown id is harmless
    assert link.client.pending == {}
    assert link.deliver(link.client, [link.server.send_result(id_, 1)]) == [Response(id=id_, result=1)]


def test_answer_with_unknown_id_and_null_id_error() -> None:
    peer = Peer()
    id_, _ = peer.send_request("ping")
    got = peer.receive_data(
        Peer().send_result(99, None) + Peer().send_error(None, -32700, "bad") + Peer().send_result(id_, 0)
    )
    assert got == [
        Response(id=99),
        ErrorResponse(id=None, error=RpcError(code=-32700, message="bad")),
        Response(id=id_, result=0, method="ping"),
    ]
    assert peer.pending == {}


def test_invalid_body_is_reported_and_neighbours_still_flow() -> None:
    peer = Peer()
    data = frame({"jsonrpc": "2.0", "method": "a"}).encode() + raw_frame(b"{oops") + raw_frame(
        b'{"id":[1],"error":{"code":1,"message":"x"}}') + frame({"jsonrpc": "2.0", "method": "b"}).encode()
    got = peer.receive_data(data)
    assert [type(m) for m in got] == [Notification, Invalid, Invalid, Notification]
    assert got[1].body == b"{oops"  # type: ignore[union-attr]
    assert "invalid JSON" in got[1].reason  # type: ignore[union-attr]


def test_peer_framing_error_keeps_earlier_messages() -> None:
    peer = Peer()
    id_, _ = peer.send_request("ping")
    with pytest.raises(FramingError) as info:
        peer.receive_data(Peer().send_result(id_, "pong") + '{"unframed":1}')
    assert info.value.messages == (Response(id=id_, result="pong", method="ping"),)
    assert peer.receive_data(Peer().send_notification("n")) == [Notification(method="n", params={})]


def test_peer_ids_start_where_asked_and_repr_shows_state() -> None:
    peer = Peer(first_id=10)
    assert peer.send_request("a")[0] == 10
    assert peer.send_request("b")[0] == 11
    assert repr(peer) == "<Peer pending=2 next_id=12>"
    peer.pending.clear()  # a copy: the peer is unaffected
    assert len(peer.pending) == 2


def test_a_message_over_the_limit_is_refused_before_anything_is_allocated() -> None:
    body = serialize(Request(id=1, method="chat/ask", params={"q": "x" * 100}))
    exact = len(f"Content-Length: {len(body)}\r\n\r\n") + len(body)
    peer = Peer(max_message_bytes=exact)
    id_, frame = peer.send_request("chat/ask", {"q": "x" * 100})  # exactly at the limit: fine
    assert len(frame.encode()) == exact and id_ == 1
    with pytest.raises(FrameTooLarge) as info:
        peer.send_request("chat/ask", {"q": "中" * 100})  # counted in UTF-8 bytes, not characters
    assert (info.value.method, info.value.limit) == ("chat/ask", exact) and info.value.size > exact
    assert peer.pending == {1: "chat/ask"}
    assert peer.send_request("ping")[0] == 2  # the refused request used no id
    with pytest.raises(FrameTooLarge):
        peer.send_notification("session/cancel", {"pad": "x" * exact})
