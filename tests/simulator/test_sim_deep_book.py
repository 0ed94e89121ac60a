"""The deepest book the simulator allows (5,000 levels per side) keeps every price positive; ``--levels`` sets the
depth of every symbol's books."""

from __future__ import annotations

from orderbook.simulator.config import from_args, parser
from orderbook.simulator.market import CENTRE_TICKS, ModelParams, VenueModel
from orderbook.simulator.simulator import Simulator


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
