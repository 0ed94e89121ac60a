"""The relay's envelope: what a leader makes reads back the same; anything else is refused with a reason, the
label it is counted under."""

from __future__ import annotations

import pytest

from orderbook.proto import orderbook_pb2, orderbook_relay_pb2
from orderbook.relay import envelope
from orderbook.serving.codec import SummaryFields
from orderbook.symbol_state import SymbolState
from tests.relay.forge import summary

STATE = SymbolState("ETHBTC", ("binance", "bitstamp"), ("binance",))
KEY = b"the deployment's secret"


def test_an_update_reads_back_with_its_summary_bytes_untouched() -> None:
    data = envelope.update(3, 17, "host:1:ab", STATE, summary(1.0, levels=4))
    item = envelope.read(data)
    assert isinstance(item, envelope.Update)
    assert (item.epoch, item.sequence, item.node, item.symbol, item.levels) == (3, 17, "host:1:ab", "ETHBTC", 4)
    assert item.summary == summary(1.0, levels=4)
    assert item.state == STATE
    assert item.published_ns > 0


def test_an_update_before_the_first_summary_has_an_empty_one() -> None:
    item = envelope.read(envelope.update(1, 1, "n", STATE, None))
    assert isinstance(item, envelope.Update) and item.summary == b"" and item.levels == 0


def test_a_heartbeat_carries_the_catalogue() -> None:
    item = envelope.read(envelope.heartbeat(2, 5, "n", ["BTCUSDT", "ETHBTC"], 10))
    assert isinstance(item, envelope.Heartbeat)
    assert (item.epoch, item.sequence, item.symbols, item.depth) == (2, 5, ("BTCUSDT", "ETHBTC"), 10)


def test_the_largest_numbers_and_catalogue_a_leader_can_send_are_taken() -> None:
    symbols = [f"S{index:04d}" for index in range(1000)]
    item = envelope.read(envelope.heartbeat(2**53, 2**53, "n", symbols, 1000))
    assert isinstance(item, envelope.Heartbeat) and (item.epoch, len(item.symbols), item.depth) == (2**53, 1000, 1000)


def _raw(**fields: object) -> bytes:
    fields = {"epoch": 1, "sequence": 1, "node": "n", "published_unix_nanos": 1} | fields
    return orderbook_relay_pb2.Envelope(**fields).SerializeToString()  # type: ignore[arg-type]


def _update(symbol: str = "ETHBTC", summary_bytes: bytes = b"", state: SymbolState = STATE) -> bytes:
    return _raw(update=orderbook_relay_pb2.SymbolUpdate(symbol=symbol, summary=summary_bytes,
                                                        state=state.to_message()))


def _beat(symbols: list[str], depth: int = 10) -> bytes:
    return _raw(heartbeat=orderbook_relay_pb2.Heartbeat(symbols=symbols, depth=depth))


ASKS_FIRST = (orderbook_pb2.Summary(asks=[orderbook_pb2.Level(price=2.0)]).SerializeToString()
              + orderbook_pb2.Summary(bids=[orderbook_pb2.Level(price=1.0)]).SerializeToString())
"""A valid orderbook.Summary, but not laid out as the leader lays one out: it could not be cut to a depth."""


@pytest.mark.parametrize(("data", "reason", "detail"), [
    (b"\xff\xff\xff", "malformed", "not an orderbook.Envelope"),
    (b"x" * (envelope.MAX_ENVELOPE + 1), "malformed", "more than"),
    (_raw(epoch=0), "out_of_range", "epoch 0"),
    (_raw(sequence=0), "out_of_range", "sequence 0"),
    (_raw(epoch=2**53 + 1), "out_of_range", "epoch 9007199254740993"),
    (_raw(epoch=2**63), "out_of_range", "epoch 9223372036854775808"),
    (_raw(sequence=2**62), "out_of_range", "sequence 4611686018427387904"),
    (_raw(epoch=2**64 - 1, sequence=2**64 - 1), "out_of_range", "18446744073709551615 and sequence"),
    (_raw(node=""), "malformed", "node ''"),
    (_raw(node="a b"), "malformed", "node 'a b'"),
    (_raw(node="x" * 300), "malformed", "node"),
    (_raw(published_unix_nanos=-5), "malformed", "published at -5"),
    (_raw(), "malformed", "neither an update nor a heartbeat"),
    (_raw(update=orderbook_relay_pb2.SymbolUpdate(symbol="ETHBTC")), "malformed", "carries the state of ''"),
    (_update(symbol="eth btc", state=SymbolState("eth btc", (), ())), "malformed", "an update of 'eth btc'"),
    (_update(state=SymbolState("ETHBTC", ("binance",), ("kraken",))), "malformed", "and in step on"),
    (_update(state=SymbolState("ETHBTC", ("binance", "binance"), ())), "malformed", "listed on"),
    (_update(state=SymbolState("ETHBTC", tuple(f"v{n}" for n in range(17)), ())), "malformed", "listed on"),
    (_update(state=SymbolState("ETHBTC", ("Bin\nance",), ())), "malformed", "listed on"),
    (_update(summary_bytes=b"\x09x"), "bad_summary", "cut short"),
    (_update(summary_bytes=b"not a summary at all"), "bad_summary", "not an orderbook.Summary"),
    (_update(summary_bytes=b"\x12\x05\x0a\x03\xff\xfe\xfd"), "bad_summary", "UTF-8"),
    (_update(summary_bytes=ASKS_FIRST), "bad_summary", "unexpected field"),
    (_beat([]), "bad_catalogue", "0 symbols"),
    (_beat(["ETHBTC"], depth=0), "bad_catalogue", "depth 0"),
    (_beat(["ETHBTC"], depth=1001), "bad_catalogue", "depth 1001"),
    (_beat([f"S{index:04d}" for index in range(1001)]), "bad_catalogue", "1001 symbols"),
    (_beat(["ETHBTC", "ETHBTC"]), "bad_catalogue", "repeated"),
    (_beat(["ETHBTC", "eth-btc"]), "bad_catalogue", "malformed"),
    (_beat(["ETHBTC", "X" * 21]), "bad_catalogue", "malformed"),
])
def test_what_a_leader_would_not_send_is_refused_with_a_reason(data: bytes, reason: str, detail: str) -> None:
    with pytest.raises(envelope.BadEnvelope, match=detail) as refused:
        envelope.read(data)
    assert refused.value.reason == reason


def test_a_catalogue_of_120000_symbols_is_refused_before_its_symbols_are_made_strings() -> None:
    data = _beat([f"Z{index:X}" for index in range(120_000)])
    assert len(data) < envelope.MAX_ENVELOPE  # it fits: only the count refuses it
    with pytest.raises(envelope.BadEnvelope, match="120000 symbols") as refused:
        envelope.read(data)
    assert refused.value.reason == "bad_catalogue"


def test_the_summary_check_agrees_with_the_cut_the_streams_make() -> None:
    """What read() takes, SummaryFields cuts: a shallower stream never meets a summary it cannot cut."""
    item = envelope.read(envelope.update(1, 1, "n", STATE, summary(5.0, levels=10)))
    assert isinstance(item, envelope.Update)
    cut = orderbook_pb2.Summary.FromString(SummaryFields(item.summary).top(3))
    assert [level.price for level in cut.bids] == [5.0, 4.0, 3.0]


def test_a_signed_envelope_reads_back_with_the_key_and_also_without_one() -> None:
    data = envelope.heartbeat(1, 1, "n", ["ETHBTC"], 10, KEY)
    signed = envelope.read(data, KEY)
    assert isinstance(signed, envelope.Heartbeat) and signed.symbols == ("ETHBTC",)
    assert envelope.read(data) == signed  # a reader without a key ignores the field
    assert len(orderbook_relay_pb2.Envelope.FromString(data).mac) == 32


@pytest.mark.parametrize("data", [
    envelope.update(1, 1, "n", STATE, summary(1.0)),  # unsigned
    envelope.update(1, 1, "n", STATE, summary(1.0), b"another deployment's secret"),
    envelope.update(1, 1, "n", STATE, summary(1.0), KEY).replace(b"ETHBTC", b"BTCETH"),  # altered
    envelope.update(1, 1, "n", STATE, summary(1.0), KEY)[:-1],  # cut short
    envelope.update(1, 1, "n", STATE, summary(1.0), KEY) + _raw(epoch=9),  # a field added after the MAC
    b"",
])
def test_with_a_key_an_envelope_without_a_valid_mac_is_refused(data: bytes) -> None:
    with pytest.raises(envelope.BadEnvelope, match="no valid MAC") as refused:
        envelope.read(data, KEY)
    assert refused.value.reason == "bad_mac"

