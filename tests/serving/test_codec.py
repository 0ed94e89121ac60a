from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook.merge import Level, MergedTop
from orderbook.prices import parse_decimal, to_float
from orderbook.proto import orderbook_pb2
from orderbook.serving.codec import SummaryFields, _field_end, encode_summary


def decode(payload: bytes) -> orderbook_pb2.Summary:
    return orderbook_pb2.Summary.FromString(payload)


def level(exchange: str, price: str, amount: str) -> Level:
    return Level(exchange, parse_decimal(price), parse_decimal(amount))


def test_levels_keep_order_names_and_the_nearest_floats() -> None:
    top = MergedTop(
        parse_decimal("0.00001"),
        (level("binance", "0.05123000", "1.5"), level("bitstamp", "0.05122999", "12345.678901234567")),
        (level("bitstamp", "0.05124", "0.000000000001"),),
    )
    summary = decode(encode_summary(top))
    assert summary.spread == 1e-05
    assert [(x.exchange, x.price, x.amount) for x in summary.bids] == [
        ("binance", 0.05123, 1.5),
        ("bitstamp", 0.05122999, 12345.678901234567),
    ]
    assert [(x.exchange, x.price, x.amount) for x in summary.asks] == [("bitstamp", 0.05124, 1e-12)]


def test_no_spread_is_nan_when_a_side_is_empty() -> None:
    summary = decode(encode_summary(MergedTop(None, (level("binance", "1", "2"),), ())))
    assert math.isnan(summary.spread)
    assert len(summary.bids) == 1 and len(summary.asks) == 0


def test_empty_book_has_nan_spread_and_no_levels() -> None:
    summary = decode(encode_summary(MergedTop(None, (), ())))
    assert math.isnan(summary.spread)
    assert list(summary.bids) == [] and list(summary.asks) == []


def test_zero_and_negative_spreads_survive() -> None:
    crossed = MergedTop(-parse_decimal("0.0001"), (level("binance", "1.0001", "1"),), (level("bitstamp", "1", "1"),))
    assert decode(encode_summary(crossed)).spread == -0.0001
    touching = MergedTop(0, (level("binance", "1", "1"),), (level("bitstamp", "1", "1"),))
    assert decode(encode_summary(touching)).spread == 0.0


def test_encoding_is_deterministic() -> None:
    top = MergedTop(parse_decimal("0.1"), (level("binance", "1", "2"),), (level("bitstamp", "1.1", "3"),))
    assert encode_summary(top) == encode_summary(top)


def _reference(top: MergedTop) -> orderbook_pb2.Summary:
    """What protobuf itself builds for ``top``."""

    def levels(rows):
        return [orderbook_pb2.Level(exchange=r.exchange, price=to_float(r.price), amount=to_float(r.amount))
                for r in rows]

    spread = math.nan if top.spread is None else to_float(top.spread)
    return orderbook_pb2.Summary(spread=spread, bids=levels(top.bids), asks=levels(top.asks))


_levels = st.lists(
    st.builds(
        Level,
        st.sampled_from(["binance", "bitstamp", "", "é" * 70]),
        st.integers(min_value=0, max_value=10**24),
        st.integers(min_value=0, max_value=10**24),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    spread=st.none() | st.integers(min_value=-(10**20), max_value=10**20),
    bids=_levels,
    asks=_levels,
)
def test_hand_encoding_decodes_to_what_protobuf_builds(spread, bids, asks) -> None:
    top = MergedTop(spread, tuple(bids), tuple(asks))
    decoded = orderbook_pb2.Summary.FromString(encode_summary(top))
    expected = _reference(top)
    assert decoded.bids == expected.bids and decoded.asks == expected.asks
    assert math.isnan(decoded.spread) if top.spread is None else decoded.spread == expected.spread
    assert encode_summary(top) == expected.SerializeToString()  # byte for byte, as protobuf writes it


@settings(max_examples=300, deadline=None)
@given(
    spread=st.none() | st.integers(min_value=-(10**20), max_value=10**20),
    bids=_levels,
    asks=_levels,
    depth=st.integers(min_value=1, max_value=14),
)
def test_a_summary_cut_as_bytes_is_its_top_levels_as_protobuf_reads_them(spread, bids, asks, depth) -> None:
    top = MergedTop(spread, tuple(bids), tuple(asks))
    full = decode(encode_summary(top))
    cut = SummaryFields(encode_summary(top)).top(depth)
    decoded = decode(cut)
    assert list(decoded.bids) == list(full.bids)[:depth] and list(decoded.asks) == list(full.asks)[:depth]
    assert math.isnan(decoded.spread) if top.spread is None else decoded.spread == full.spread
    assert cut == encode_summary(MergedTop(spread, top.bids[:depth], top.asks[:depth]))  # the same bytes


def test_a_cut_at_or_beyond_every_side_is_the_summary_itself() -> None:
    payload = encode_summary(MergedTop(1, (level("binance", "1", "2"),), (level("bitstamp", "1.1", "3"),) * 3))
    fields = SummaryFields(payload)
    assert fields.top(3) is payload and fields.top(100) is payload
    assert len(decode(fields.top(2)).asks) == 2 and len(decode(fields.top(2)).bids) == 1
    with pytest.raises(ValueError, match="at least 1"):
        fields.top(0)


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        (b"\x09\x00\x00", "spread"),  # a spread tag and 2 of its 8 bytes
        (b"\x12\x05ab", "cut short"),  # a bid of 5 bytes, 2 there
        (b"\x12\xff", "cut short or malformed"),  # a length whose varint never ends
        (b"\x1a\x00\x12\x00", "unexpected field"),  # a bid after the asks: not encode_summary's order
        (b"\x22\x00", "unexpected field"),  # field 4: not a Summary field
    ],
)
def test_bytes_that_are_not_a_summary_in_field_order_are_refused(payload: bytes, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        SummaryFields(payload)


def _reference_ends(payload: bytes) -> tuple[list[int], list[int]]:
    """SummaryFields's split, as it was written before its one-byte-length fast path: field by field."""
    position = 9 if payload[:1] == b"\x09" else 0
    if position > len(payload):
        raise ValueError("summary cut short in its spread")
    ends: dict[bytes, list[int]] = {b"\x12": [], b"\x1a": []}
    for tag in (b"\x12", b"\x1a"):
        while payload[position:position + 1] == tag:
            position = _field_end(payload, position)
            ends[tag].append(position)
    if position != len(payload):
        raise ValueError(f"unexpected field at byte {position} of a summary")
    return ends[b"\x12"], ends[b"\x1a"]


@settings(max_examples=500)
@given(spread=st.none() | st.integers(min_value=-(10**20), max_value=10**20), bids=_levels, asks=_levels,
       cut=st.integers(min_value=0, max_value=2000),
       edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=3), long_name=st.booleans())
def test_summary_fields_accepts_and_splits_exactly_what_the_field_by_field_split_did(spread, bids, asks, cut, edits,
                                                                                      long_name) -> None:
    if long_name and bids:  # a level longer than 127 bytes: a two-byte length
        bids = [Level("x" * 130, bids[0].price, bids[0].amount), *bids[1:]]
    payload = bytearray(encode_summary(MergedTop(spread, tuple(bids), tuple(asks))))
    for at, value in edits:
        if payload:
            payload[at % len(payload)] = value
    data = bytes(payload[:cut] if cut < len(payload) else payload)
    try:
        expected: object = _reference_ends(data)
    except ValueError as error:
        expected = str(error)
    try:
        fields = SummaryFields(data)
        found: object = (fields._bid_ends, fields._ask_ends)
    except ValueError as error:
        found = str(error)
    assert found == expected
