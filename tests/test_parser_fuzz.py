"""Whatever arrives, the parsers answer a typed message or raise BadMessage, and the syncs stay exact.

Anything else escaping a parser (KeyError, TypeError, OverflowError...) would bypass the "bad frame: count, log,
skip" boundary and take the connection down as if it had broken.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook.exchanges.binance import BinanceVenue
from orderbook.exchanges.bitstamp import BitstampVenue
from orderbook.exchanges.messages import BadMessage, BookDiff, BookSnapshot, Notice, ReconnectRequest
from orderbook.exchanges.sync import Outcome
from orderbook.exchanges.binance import BinanceSync
from orderbook.exchanges.bitstamp import BitstampSync

FAST = settings(max_examples=200, deadline=None)

BINANCE = BinanceVenue("wss://stream.binance.com:9443", "https://api.binance.com")
BITSTAMP = BitstampVenue("wss://ws.bitstamp.net", "https://www.bitstamp.net")
PROTOCOLS = pytest.mark.parametrize("protocol", [BINANCE, BITSTAMP], ids=["binance", "bitstamp"])

# Values that reach the parsers' deeper branches more often than uniformly random JSON would.
KEYS = ["e", "E", "s", "U", "u", "b", "a", "stream", "data", "result", "id", "error", "code", "msg", "event",
        "channel", "timestamp", "microtimestamp", "bids", "asks", "lastUpdateId", "status"]
WORDS = ["depthUpdate", "serverShutdown", "ETHBTC", "ethbtc@depth@100ms", "data", "bts:request_reconnect",
         "bts:heartbeat", "bts:error", "bts:subscription_succeeded", "diff_order_book_ethbtc", "0.05123000",
         "0", "0.00000000", "-1", "1e5", "NaN", "12", "1641343691591603", ""]
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(WORDS)
)
json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=6),
    max_leaves=30,
)


def check_message(protocol, raw) -> None:
    try:
        message = protocol.parse_message(raw)
    except BadMessage as error:
        assert error.reason and isinstance(error.loses_data, bool)
        return
    assert type(message) in (BookDiff, ReconnectRequest, Notice)
    if type(message) is BookDiff:
        sync = protocol.new_sync()
        sync.on_snapshot(BookSnapshot(0, (), ()))
        sync.on_diff(message)  # must not raise, whatever the ids and levels


def check_snapshot(protocol, body: bytes) -> None:
    try:
        snapshot = protocol.parse_snapshot(body)
    except BadMessage as error:
        assert error.reason and error.loses_data
        return
    assert type(snapshot) is BookSnapshot
    protocol.new_sync().on_snapshot(snapshot)


@PROTOCOLS
@FAST
@given(value=json_values)
def test_any_json_value(protocol, value):
    text = json.dumps(value)
    check_message(protocol, text)
    check_message(protocol, json.dumps({"stream": "ethbtc@depth@100ms", "data": value}))
    check_snapshot(protocol, text.encode())


@PROTOCOLS
@FAST
@given(fields=st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8))
def test_near_valid_frames(protocol, fields):
    diff = {"e": "depthUpdate", "E": 1, "s": "ETHBTC", "U": 1, "u": 2, "b": [], "a": []}
    data: dict[str, object] = {"microtimestamp": "1", "bids": [], "asks": []}
    frame = {"event": "data", "channel": "diff_order_book_ethbtc", "data": data}
    check_message(protocol, json.dumps({**diff, **fields}))
    check_message(protocol, json.dumps({**frame, "data": {**data, **fields}}))
    check_message(protocol, json.dumps({**frame, **fields}))
    check_snapshot(protocol, json.dumps({"lastUpdateId": 1, "microtimestamp": "1", **fields}).encode())


@PROTOCOLS
@FAST
@given(raw=st.text() | st.binary())
def test_any_text_or_bytes(protocol, raw):
    check_message(protocol, raw)
    check_snapshot(protocol, raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    ("protocol", "frame"),
    [
        (BINANCE, '{"e":"depthUpdate","E":1%s,"s":"ETHBTC","U":1,"u":2,"b":[],"a":[]}' % ("0" * 400)),
        (BITSTAMP, '{"event":"data","channel":"diff_order_book_ethbtc",'
                   '"data":{"microtimestamp":1%s,"bids":[],"asks":[]}}' % ("0" * 400)),
    ],
    ids=["binance", "bitstamp"],
)
def test_huge_integer_timestamp_is_a_bad_message(protocol, frame):
    with pytest.raises(BadMessage):
        protocol.parse_message(frame)


@pytest.mark.parametrize("frame", ['{"event":[]}', '{"event":{"a":1},"channel":"","data":""}'])
def test_bitstamp_unhashable_event_is_a_bad_message(frame):
    with pytest.raises(BadMessage) as caught:
        BITSTAMP.parse_message(frame)
    assert caught.value.reason == "unknown_event"


# -- syncs fed whatever parses -----------------------------------------------------------------------------------

PRICE_TEXTS = ["0.05", "0.050", "0.05000000", "0.06", "0.0600", "0.07", "1", "1.0"]
AMOUNT_TEXTS = ["0", "0.00000", "0.00000000", "1", "1.00", "2.5", "0.1"]
wire_levels = st.lists(st.tuples(st.sampled_from(PRICE_TEXTS), st.sampled_from(AMOUNT_TEXTS)), max_size=4)
ids = st.integers(min_value=0, max_value=30)  # a narrow range: stale, fitting, and gapped ids all occur


@st.composite
def binance_ops(draw):
    if draw(st.booleans()):
        first = draw(ids)
        event = {"e": "depthUpdate", "E": 1, "s": "ETHBTC", "U": first, "u": first + draw(st.integers(0, 3)),
                 "b": draw(wire_levels), "a": draw(wire_levels)}
        return "diff", BINANCE.parse_message(json.dumps(event))
    body = {"lastUpdateId": draw(ids), "bids": draw(wire_levels), "asks": draw(wire_levels)}
    return "snapshot", BINANCE.parse_snapshot(json.dumps(body).encode())


@st.composite
def bitstamp_ops(draw):
    stamp = str(draw(ids))
    if draw(st.booleans()):
        frame = {"event": "data", "channel": "diff_order_book_ethbtc",
                 "data": {"timestamp": "0", "microtimestamp": stamp, "bids": draw(wire_levels),
                          "asks": draw(wire_levels)}}
        return "diff", BITSTAMP.parse_message(json.dumps(frame))
    body = {"timestamp": "0", "microtimestamp": stamp, "bids": draw(wire_levels), "asks": draw(wire_levels)}
    return "snapshot", BITSTAMP.parse_snapshot(json.dumps(body).encode())


class ModelSync:
    """docs/protocols.md's procedure with plain dicts, written apart from orderbook.exchanges.sync."""

    def __init__(self, binance: bool, max_buffered: int) -> None:
        self.binance = binance
        self.max_buffered = max_buffered
        self.reset()

    def reset(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.in_step = False
        self.last: int | None = None
        self.snapshot_last: int | None = None
        self.waiting: list[BookDiff] = []

    def set_levels(self, diff: BookDiff) -> None:
        for side, levels in ((self.bids, diff.bids), (self.asks, diff.asks)):
            for price, amount in levels:
                if amount == 0:
                    side.pop(price, None)
                else:
                    side[price] = amount

    def diff(self, diff: BookDiff) -> Outcome:
        if not self.in_step:
            if len(self.waiting) == self.max_buffered:
                self.reset()
                return Outcome.OVERFLOW
            self.waiting.append(diff)
            return Outcome.BUFFERED
        assert self.last is not None and self.snapshot_last is not None  # set with in_step
        if self.binance:
            if diff.final_id < self.last:  # "u < book id: stale, ignore it"
                return Outcome.STALE
            if diff.first_id > self.last + 1:  # "U > book id + 1: events were missed"
                self.reset()
                return Outcome.GAP
        elif diff.final_id <= self.snapshot_last:  # "microtimestamp <= snapshot.microtimestamp": already in it
            return Outcome.STALE
        elif not diff.first_id > self.last:  # "not greater than the last applied one is out of order"
            self.reset()
            return Outcome.OUT_OF_ORDER
        self.set_levels(diff)
        self.last = diff.final_id
        return self.crossed_or(Outcome.APPLIED)

    def crossed_or(self, outcome: Outcome) -> Outcome:
        """A venue's book whose best bid is at or above its best ask cannot be right: start over."""
        if self.bids and self.asks and max(self.bids) >= min(self.asks):
            self.reset()
            return Outcome.CROSSED
        return outcome

    def snapshot(self, snapshot: BookSnapshot) -> Outcome:
        kept = [diff for diff in self.waiting if diff.final_id > snapshot.last_id]  # "drop u <= lastUpdateId"
        if self.binance and kept and not kept[0].first_id <= snapshot.last_id + 1:
            return Outcome.SNAPSHOT_TOO_OLD
        # Bitstamp: "a snapshot is accepted only when its microtimestamp is at or after the first buffered diff's"
        if not self.binance and self.waiting and snapshot.last_id < self.waiting[0].first_id:
            return Outcome.SNAPSHOT_TOO_OLD
        self.waiting = []
        self.bids = {price: amount for price, amount in snapshot.bids if amount}
        self.asks = {price: amount for price, amount in snapshot.asks if amount}
        self.last = self.snapshot_last = snapshot.last_id
        self.in_step = True
        if self.crossed_or(Outcome.APPLIED) is Outcome.CROSSED:
            return Outcome.CROSSED
        for diff in kept:
            outcome = self.diff(diff)
            if outcome in (Outcome.GAP, Outcome.OUT_OF_ORDER, Outcome.CROSSED):
                return outcome
        return Outcome.APPLIED


@pytest.mark.parametrize(
    ("sync_class", "ops", "binance"),
    [(BinanceSync, binance_ops(), True), (BitstampSync, bitstamp_ops(), False)],
    ids=["binance", "bitstamp"],
)
@settings(max_examples=300, deadline=None)
@given(data=st.data(), max_buffered=st.integers(min_value=1, max_value=6))
def test_sync_fed_parsed_frames_matches_the_model(sync_class, ops, binance, data, max_buffered):
    sync, model = sync_class(max_buffered=max_buffered), ModelSync(binance, max_buffered)
    for kind, value in data.draw(st.lists(ops, max_size=25), label="frames"):
        if kind == "diff":
            assert sync.on_diff(value) is model.diff(value)
        else:
            assert sync.on_snapshot(value) is model.snapshot(value)
        assert sync.book.bids() == sorted(model.bids.items(), reverse=True)
        assert sync.book.asks() == sorted(model.asks.items())
        assert (sync.in_step, sync.last_id, sync.buffered) == (model.in_step, model.last, len(model.waiting))
