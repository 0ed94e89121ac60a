"""The deepest book the simulator allows (5,000 levels per side) keeps every price positive; ``--levels`` sets the
depth of every symbol's books."""

from __future__ import annotations

import json

import gevent
import pytest

from orderbook.prices import format_decimal
from orderbook.simulator.binance import BinanceExchange
from orderbook.simulator.bitstamp import BitstampExchange
from orderbook.simulator.config import from_args, parser
from orderbook.simulator.market import CENTRE_TICKS, ModelParams, VenueModel
from orderbook.simulator.simulator import Simulator
from orderbook.simulator.wire import Request


def test_deep_books_keep_positive_prices_and_shallow_ones_keep_the_default_centre():
    assert ModelParams.with_levels(300) == ModelParams(levels=300)
    assert ModelParams.with_levels(5000).centre_ticks > CENTRE_TICKS
    model = VenueModel(1, ModelParams.with_levels(5000))
    for _ in range(300):
        change = model.step()
        assert all(price > 0 for price, _ in change.bids + change.asks)
    bids, asks = model.levels()
    assert len(bids) >= 5000 and len(asks) >= 5000
    assert bids[-1][0] > 0 and bids[0][0] < asks[0][0]


def test_levels_sets_the_depth_of_every_symbols_books_on_both_venues():
    """``--levels 1000`` (the many-symbols benchmark's books): each symbol's market, not only the default one's, is
    that deep a side on both venues from the start, and stays at least that deep as it walks."""
    config = from_args(parser().parse_args(["--symbol", "ETHBTC,BTCUSDT,SOLEUR", "--levels", "1000"]))
    simulator = Simulator(config)
    for symbol, markets in simulator.markets.items():
        for market in markets:
            assert market is not None  # every symbol is served on both venues here
            assert (market.truth.bid_depth, market.truth.ask_depth) == (1000, 1000), (symbol, market.name)
            assert market.model is not None
            for _ in range(200):
                market.publish(market.model.step())
            assert 1000 <= market.truth.bid_depth <= 1010 and 1000 <= market.truth.ask_depth <= 1010


@pytest.mark.parametrize("venue", ["binance", "bitstamp"])
def test_a_deep_snapshot_body_lets_the_streams_run_while_written_and_is_the_book_when_asked(venue):
    """Writing 1,000 levels a side takes over a millisecond: the hub turns while the body is written (the market
    moves on meanwhile, as the streams do), and the body is still the book, and its id, of the moment it was asked.
    The market here waits on a timer between its steps, as the simulator's feed does (ModelFeed): only a full turn
    of the hub lets a timer fire (with ``gevent.sleep(0)`` between the slices it made no step at all)."""
    model = VenueModel(3, ModelParams.with_levels(1000))
    if venue == "binance":
        exchange: BinanceExchange | BitstampExchange = BinanceExchange("ETHBTC", seed=3)
        request = Request("GET", "/api/v3/depth", {"symbol": "ETHBTC", "limit": "1000"}, {}, b"", ("127.0.0.1", 1))
    else:
        exchange = BitstampExchange("ethbtc")
        request = Request("GET", "/api/v2/order_book/ethbtc/", {}, {}, b"", ("127.0.0.1", 1))
    exchange.load(*model.levels())
    exchange.model = model
    moves = []

    def market() -> None:
        while True:
            exchange.publish(model.step())
            moves.append(1)
            gevent.sleep(0.00001)

    mover = gevent.spawn(market)
    try:
        gevent.sleep(0.001)  # the mover's first steps: the book moved after the moment the test took above
        moves.clear()
        asked = ([[format_decimal(p), format_decimal(a)] for p, a in exchange.truth.top_bids(1000)],
                 [[format_decimal(p), format_decimal(a)] for p, a in exchange.truth.top_asks(1000)])
        asked_id = exchange.last_update_id if isinstance(exchange, BinanceExchange) else exchange.microtimestamp
        response = exchange.rest(request)
    finally:
        mover.kill()
    assert response is not None and response.status == 200
    body = json.loads(response.body)
    assert len(moves) >= 10, "the hub turned while the body was written"
    assert (body["bids"], body["asks"]) == asked
    assert int(body["lastUpdateId"] if venue == "binance" else body["microtimestamp"]) == asked_id
