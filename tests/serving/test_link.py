"""The link between the book process and a serving process, over a real socketpair."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from orderbook.serving import link
from orderbook.symbol_state import SymbolState


class Pair:
    """A socketpair: the test writes on ``writer`` and reads through ``reader`` as the serving process does."""

    def __init__(self) -> None:
        self.writer, self.other = socket.socketpair()
        self.reader = self.other.makefile("rb")

    def send(self, data: bytes) -> None:
        self.writer.sendall(data)

    def end(self, data: bytes = b"") -> None:
        """Write ``data``, then close this side: the reader sees the end of stream after it."""
        self.writer.sendall(data)
        self.writer.close()

    def close(self) -> None:
        for closing in (self.reader, self.other, self.writer):
            closing.close()


def _next_frame(pair: Pair) -> tuple[int, bytes, float]:
    frame = link.read_frame(pair.reader)
    assert frame is not None, "the stream ended"
    return frame


@pytest.fixture
def pair() -> Iterator[Pair]:
    sockets = Pair()
    yield sockets
    sockets.close()


def test_frames_arrive_whole_and_in_order(pair: Pair) -> None:
    summary = bytes(range(256)) * 3
    pair.send(link.frame(link.SUMMARY, summary, 12345.678901234))
    pair.send(link.serving_frame(True) + link.serving_frame(False) + link.frame(link.SUMMARY, b""))
    assert link.read_frame(pair.reader) == (link.SUMMARY, summary, 12345.678901234)
    assert link.read_frame(pair.reader) == (link.SERVING, b"\x01", 0.0)
    assert link.read_frame(pair.reader) == (link.SERVING, b"\x00", 0.0)
    assert link.read_frame(pair.reader) == (link.SUMMARY, b"", 0.0)


def test_a_symbols_summary_and_state_arrive_with_their_symbol(pair: Pair) -> None:
    state = SymbolState("BTCUSDT", ("binance", "bitstamp"), ("bitstamp",))
    pair.send(link.summary_frame("BTCUSDT", b"\x09summary", 7.25) + link.state_frame(state)
              + link.summary_frame("ETHBTC", b"", 8.5))
    kind, payload, published_at = _next_frame(pair)
    assert (kind, link.split_summary(payload), published_at) == (link.SUMMARY, ("BTCUSDT", b"\x09summary"), 7.25)
    kind, payload, _ = _next_frame(pair)
    assert (kind, link.read_state(payload)) == (link.STATE, state)
    kind, payload, _ = _next_frame(pair)
    assert link.split_summary(payload) == ("ETHBTC", b"")


@pytest.mark.parametrize(("payload", "complaint"), [(b"", "cut short"), (b"\x07ETH", "cut short"),
                                                    (b"\x02\xff\xfe", "not ASCII")])
def test_a_summary_frame_without_a_whole_symbol_is_an_error(payload: bytes, complaint: str) -> None:
    with pytest.raises(link.LinkError, match=complaint):
        link.split_summary(payload)


def test_a_state_frame_that_is_not_a_state_is_an_error() -> None:
    with pytest.raises(link.LinkError, match="not an orderbook.SymbolState"):
        link.read_state(b"\x0a\x05AB")


def test_a_frame_of_the_largest_size_is_read(pair: Pair) -> None:
    payload = b"x" * link.MAX_PAYLOAD
    writer = threading.Thread(target=pair.end, args=(link.frame(link.SUMMARY, payload, 1.5),))
    writer.start()  # more than the socket buffer holds: written while read
    assert link.read_frame(pair.reader) == (link.SUMMARY, payload, 1.5)
    writer.join(5)
    assert link.read_frame(pair.reader) is None


def test_a_clean_end_of_stream_reads_as_none(pair: Pair) -> None:
    pair.end(link.serving_frame(True))
    assert link.read_frame(pair.reader) == (link.SERVING, b"\x01", 0.0)
    assert link.read_frame(pair.reader) is None


def test_an_end_in_the_middle_of_a_header_is_an_error(pair: Pair) -> None:
    pair.end(link.frame(link.SUMMARY, b"abc")[: link.HEADER.size - 1])
    with pytest.raises(link.LinkError, match="header"):
        link.read_frame(pair.reader)


def test_an_end_in_the_middle_of_a_payload_is_an_error(pair: Pair) -> None:
    pair.end(link.frame(link.SUMMARY, b"0123456789")[:-4])
    with pytest.raises(link.LinkError, match="middle of a frame$"):
        link.read_frame(pair.reader)


@pytest.mark.parametrize(
    "header",
    [link.HEADER.pack(0, 1, 0.0), link.HEADER.pack(5, 1, 0.0), link.HEADER.pack(255, 0, 0.0),
     link.HEADER.pack(link.SUMMARY, link.MAX_PAYLOAD + 1, 0.0), link.HEADER.pack(link.SERVING, 2**32 - 1, 0.0)],
    ids=["kind 0", "kind 5", "kind 255", "one byte too long", "4 GiB"],
)
def test_an_unknown_kind_or_an_oversize_length_is_an_error_before_any_payload_is_read(
    pair: Pair, header: bytes
) -> None:
    pair.end(header + b"x")  # reading the payload first would end in "closed in the middle of a frame"
    with pytest.raises(link.LinkError, match="bad frame"):
        link.read_frame(pair.reader)


def test_a_quote_frame_carries_its_key_and_update(pair: Pair) -> None:
    pair.end(link.quote_frame(b"key", b"update") + link.quote_frame(b"", b""))
    kind, payload, _ = link.read_frame(pair.reader) or (0, b"", 0.0)
    assert (kind, link.split_quote(payload)) == (link.QUOTE, (b"key", b"update"))
    kind, payload, _ = link.read_frame(pair.reader) or (0, b"", 0.0)
    assert link.split_quote(payload) == (b"", b"")
    with pytest.raises(link.LinkError, match="cut short"):
        link.split_quote(b"\x09\x00key")
    assert link.quote_message(b"\x01\xff", True) == {"quote": "01ff", "open": True}


def test_messages_go_one_json_object_a_line(pair: Pair) -> None:
    link.send_message(pair.writer, {"ready": 5002})
    link.send_message(pair.writer, {"stats": {"sent": 3, "latency_counts": [0, 1]}})
    link.send_message(pair.writer, {"error": "cannot listen on 127.0.0.1:5002: address already in use\n(really)"})
    pair.writer.close()
    assert link.read_message(pair.reader) == {"ready": 5002}
    assert link.read_message(pair.reader) == {"stats": {"sent": 3, "latency_counts": [0, 1]}}
    assert link.read_message(pair.reader) == {
        "error": "cannot listen on 127.0.0.1:5002: address already in use\n(really)"}
    assert link.read_message(pair.reader) is None


@pytest.mark.parametrize(
    ("line", "complaint"),
    [(b"{not json\n", "not JSON"), (b'{"ready": 1\n', "not JSON"), (b"\xff\xfe\n", "not JSON"),
     (b"[1, 2]\n", "not an object"), (b'"ready"\n', "not an object"), (b"null\n", "not an object")],
)
def test_a_malformed_message_is_an_error(pair: Pair, line: bytes, complaint: str) -> None:
    pair.end(line)
    with pytest.raises(link.LinkError, match=complaint):
        link.read_message(pair.reader)


def test_a_message_cut_short_by_the_end_of_stream_is_an_error(pair: Pair) -> None:
    pair.end(b'{"stats": {"sent"')
    with pytest.raises(link.LinkError, match="not JSON"):
        link.read_message(pair.reader)
