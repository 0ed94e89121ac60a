"""The relay's envelope: what a leader makes reads back the same; anything else is refused with a reason."""

from __future__ import annotations

import pytest

from orderbook.proto import orderbook_relay_pb2
from orderbook.relay import envelope
from orderbook.serving.symbols import SymbolState

STATE = SymbolState("ETHBTC", ("binance", "bitstamp"), ("binance",))


def test_an_update_reads_back_with_its_summary_bytes_untouched() -> None:
    data = envelope.update(3, 17, "host:1:ab", STATE, b"\x09\x00\x00\x00\x00\x00\x00\xf0\x3f")
    item = envelope.read(data)
    assert isinstance(item, envelope.Update)
    assert (item.epoch, item.sequence, item.node, item.symbol) == (3, 17, "host:1:ab", "ETHBTC")
    assert item.summary == b"\x09\x00\x00\x00\x00\x00\x00\xf0\x3f"
    assert item.state == STATE
    assert item.published_ns > 0


def test_an_update_before_the_first_summary_has_an_empty_one() -> None:
    item = envelope.read(envelope.update(1, 1, "n", STATE, None))
    assert isinstance(item, envelope.Update) and item.summary == b""


def test_a_heartbeat_carries_the_catalogue() -> None:
    item = envelope.read(envelope.heartbeat(2, 5, "n", ["BTCUSDT", "ETHBTC"], 10))
    assert isinstance(item, envelope.Heartbeat)
    assert (item.epoch, item.sequence, item.symbols, item.depth) == (2, 5, ("BTCUSDT", "ETHBTC"), 10)


def _raw(**fields: object) -> bytes:
    return orderbook_relay_pb2.Envelope(**fields).SerializeToString()  # type: ignore[arg-type]


@pytest.mark.parametrize(("data", "reason"), [
    (b"\xff\xff\xff", "not an orderbook.Envelope"),
    (b"x" * (envelope.MAX_ENVELOPE + 1), "more than"),
    (envelope.update(0, 1, "n", STATE, b""), "epoch 0"),
    (envelope.update(1, 0, "n", STATE, b""), "sequence 0"),
    (_raw(epoch=1, sequence=1), "neither an update nor a heartbeat"),
    (_raw(epoch=1, sequence=1, update=orderbook_relay_pb2.SymbolUpdate(symbol="ETHBTC")), "carries the state of ''"),
    (_raw(epoch=1, sequence=1, heartbeat=orderbook_relay_pb2.Heartbeat(symbols=[], depth=10)), "a heartbeat"),
    (_raw(epoch=1, sequence=1, heartbeat=orderbook_relay_pb2.Heartbeat(symbols=["A"], depth=0)), "a heartbeat"),
    (_raw(epoch=1, sequence=1, heartbeat=orderbook_relay_pb2.Heartbeat(symbols=["A", "A"], depth=1)), "a heartbeat"),
])
def test_what_a_leader_would_not_send_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(envelope.BadEnvelope, match=reason):
        envelope.read(data)
