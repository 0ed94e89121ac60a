"""The deepest book the simulator allows (5,000 levels per side) keeps every price positive."""

from __future__ import annotations

from orderbook.simulator.market import CENTRE_TICKS, ModelParams, VenueModel


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
