"""The buffered WebSocket frame reader (orderbook/websocket_frames.py): real recorded frames, cut at every byte
boundary the socket might, read back intact; control frames answered or skipped; what a server must not send,
refused."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook.websocket_frames import RECV_BYTES, FrameReader, PeerClosed, ProtocolError, TooLarge
from tests.recordings import data_sets

LIMIT = 1 << 16
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes, fin: bool = True, first_extra: int = 0, mask: bool = False) -> bytes:
    first = (0x80 if fin else 0) | opcode | first_extra
    masked = 0x80 if mask else 0
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", first, masked | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, masked | 126, length)
    else:
        head = struct.pack("!BBQ", first, masked | 127, length)
    return head + (b"\0\0\0\0" if mask else b"") + payload


class Socket:
    """Hands out ``data`` in the given chunk sizes (never more than asked), then ``b""``; counts the reads."""

    def __init__(self, data: bytes, sizes: Iterable[int] = ()) -> None:
        self.data, self.sizes, self.reads = data, iter(sizes), 0

    def ready(self) -> bool:
        return bool(self.data)

    def recv(self, most: int) -> bytes:
        self.reads += 1
        size = min(most, next(self.sizes, most))
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


def reader(data: bytes, sizes: Iterable[int] = (), on_ping: Callable[[bytes], None] = lambda payload: None,
           limit: int = LIMIT) -> tuple[FrameReader, Socket]:
    sock = Socket(data, sizes)
    return FrameReader(sock.recv, sock.ready, limit, on_ping), sock


def recorded_payloads() -> list[bytes]:
    return [text.encode() for exchange in ("binance", "bitstamp") for data_set in data_sets(exchange)
            for text in data_set.frames[:20]]


def test_recorded_frames_waiting_together_take_one_socket_read_per_64_kib():
    payloads = recorded_payloads()
    wire = b"".join(frame(OP_TEXT, payload) for payload in payloads)
    frames, sock = reader(wire)
    assert [frames.message() for _ in payloads] == payloads
    assert not frames.buffered()
    assert len(payloads) > 10 * sock.reads and sock.reads <= len(wire) // RECV_BYTES + 1


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=400), data=st.data())
def test_frames_cut_anywhere_by_the_socket_read_back_intact(cuts, data):
    payloads = data.draw(st.lists(st.sampled_from(recorded_payloads()) | st.binary(max_size=70_000), min_size=1,
                                  max_size=8))
    pieces = [frame(OP_TEXT, payload) for payload in payloads]
    wire = b"".join(pieces)
    frames, _ = reader(wire, cuts)
    for payload in payloads:
        if len(payload) > LIMIT:
            with pytest.raises(TooLarge):
                frames.message()
            return
        assert frames.message() == payload
    assert not frames.buffered()


def test_fragments_are_joined_and_control_frames_between_them_handled():
    pings: list[bytes] = []
    wire = (frame(OP_TEXT, b'{"a":', fin=False) + frame(OP_PING, b"hi") + frame(OP_CONT, b"1", fin=False)
            + frame(OP_PONG, b"") + frame(OP_CONT, b"}") + frame(OP_BINARY, b"\x00\x01"))
    frames, _ = reader(wire, [3] * 100, on_ping=pings.append)
    assert frames.message() == b'{"a":1}'
    assert pings == [b"hi"]
    assert frames.message() == b"\x00\x01"


def test_a_close_frame_and_the_end_of_the_connection_are_the_peer_closing():
    frames, _ = reader(frame(OP_TEXT, b"last") + frame(OP_CLOSE, b"\x03\xe8bye"))
    assert frames.message() == b"last"
    with pytest.raises(PeerClosed, match="closed by the venue"):
        frames.message()
    frames, _ = reader(frame(OP_TEXT, b"half a frame")[:-3])
    with pytest.raises(PeerClosed):
        frames.message()


def test_the_limit_is_checked_on_the_header_before_the_payload_is_read():
    frames, sock = reader(struct.pack("!BBQ", 0x81, 127, 8 << 20))  # the header alone: no payload ever comes
    with pytest.raises(TooLarge, match=str(8 << 20)):
        frames.message()
    assert sock.reads == 1


def test_a_fragmented_message_over_the_limit_is_refused():
    part = b"x" * (LIMIT // 2 + 1)
    frames, _ = reader(frame(OP_TEXT, part, fin=False) + frame(OP_CONT, part))
    with pytest.raises(TooLarge, match="fragmented"):
        frames.message()


@pytest.mark.parametrize("wire, reason", [
    (frame(OP_CONT, b"x"), "continuation"),
    (frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"), "inside a fragmented"),
    (frame(0x3, b"x"), "reserved opcode"),
    (frame(0xB, b""), "reserved opcode"),
    (frame(OP_TEXT, b"x", first_extra=0x40), "reserved bits"),
    (frame(OP_TEXT, b"x", mask=True), "masked"),
    (frame(OP_PING, b"p", fin=False), "control frame"),
    (frame(OP_PING, b"p" * 126), "control frame"),
])
def test_what_a_server_must_not_send_is_a_protocol_error(wire, reason):
    frames, _ = reader(wire)
    with pytest.raises(ProtocolError, match=reason):
        frames.message()


def test_bytes_read_before_a_timeout_are_kept():
    wire = frame(OP_TEXT, b"x" * 1000)
    sent: list[bytes | None] = [wire[:10], None, wire[10:]]  # None: the read times out

    def recv(most: int) -> bytes:
        step = sent.pop(0)
        if step is None:
            raise TimeoutError
        return step

    frames = FrameReader(recv, lambda: True, LIMIT, lambda payload: None)
    with pytest.raises(TimeoutError):
        frames.message()
    assert frames.buffered()
    assert frames.message() == b"x" * 1000


def test_a_frame_not_started_is_not_waited_for_and_a_ping_alone_is_answered_not_waited_after():
    pings: list[bytes] = []
    wire = frame(OP_TEXT, b"one") + frame(OP_PING, b"are you there")
    frames, sock = reader(wire, on_ping=pings.append)
    assert frames.message_waiting() == b"one"
    assert frames.message_waiting() is None  # the ping is answered; no data frame has started: not waited for
    assert pings == [b"are you there"]
    reads = sock.reads
    assert frames.message_waiting() is None and sock.reads == reads  # nothing ready: the socket is not read


def test_a_ping_ends_a_batch_whatever_follows_it_and_a_blocking_read_goes_past_it():
    """The pong says every frame before the ping has been applied, and the batch ends there: a frame that arrives
    just after it (the venue sent it on the pong) is the next batch's, read by the next blocking read."""
    pings: list[bytes] = []
    wire = frame(OP_TEXT, b"one") + frame(OP_PING, b"p1") + frame(OP_TEXT, b"two") + frame(OP_PONG, b"") + \
        frame(OP_PING, b"p2") + frame(OP_TEXT, b"three")
    frames, _ = reader(wire, on_ping=pings.append)
    assert frames.message_waiting() == b"one"
    assert frames.message_waiting() is None and pings == [b"p1"]
    assert frames.message() == b"two"
    assert frames.message_waiting() is None  # a pong ends it too
    assert frames.message() == b"three" and pings == [b"p1", b"p2"]  # a blocking read answers a ping and reads on


def test_a_frame_that_has_started_is_read_whole_by_message_waiting():
    wire = frame(OP_TEXT, b"x" * 300) + frame(OP_TEXT, b"a", fin=False) + frame(OP_CONT, b"b")
    frames, _ = reader(wire, sizes=[1] + [7] * 1000)  # its first byte here: the rest is on its way
    assert frames.message_waiting() == b"x" * 300
    assert frames.message_waiting() == b"ab"  # a fragmented message, once started, is read to its end
    assert frames.message_waiting() is None
