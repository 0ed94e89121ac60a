from __future__ import annotations

import math

from orderbook.merge import Level, MergedTop
from orderbook.prices import parse_decimal
from orderbook.proto import orderbook_pb2
from orderbook.serving.codec import encode_summary


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
