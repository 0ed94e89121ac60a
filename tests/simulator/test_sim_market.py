"""The seeded market model, stepped without a clock."""

from __future__ import annotations

from orderbook.book import VenueBook
from orderbook.simulator.market import LOT, TICK, ModelParams, VenueModel


def run(model: VenueModel, steps: int) -> list:
    return [model.step() for _ in range(steps)]


def test_same_seed_same_events_and_different_seed_different_events():
    assert run(VenueModel("7:binance"), 2000) == run(VenueModel("7:binance"), 2000)
    assert run(VenueModel("7:binance"), 200) != run(VenueModel("8:binance"), 200)


def test_events_rebuild_the_model_book_and_it_never_crosses():
    model = VenueModel("3:bitstamp", ModelParams(levels=50))
    book = VenueBook()
    book.load(*model.levels())
    for _ in range(5000):
        change = model.step()
        assert len(change) >= 1
        book.apply(change.bids, change.asks)
        assert not book.is_crossed()
    bids, asks = model.levels()
    assert (book.bids(), book.asks()) == (bids, asks)
    assert 50 <= len(bids) <= 60 and 50 <= len(asks) <= 60


def test_prices_on_the_tick_grid_near_005_and_amounts_8_decimals():
    model = VenueModel(11)
    for change in run(model, 3000):
        for price, amount in change.bids + change.asks:
            assert price % TICK == 0 and amount % LOT == 0 and amount >= 0
    bids, asks = model.levels()
    assert 0.045e12 < bids[0][0] < asks[0][0] < 0.055e12
    assert all(amount > 0 for _, amount in bids + asks)


def test_levels_sorted_best_first_in_every_event():
    for change in run(VenueModel(5), 2000):
        assert [p for p, _ in change.bids] == sorted((p for p, _ in change.bids), reverse=True)
        assert [p for p, _ in change.asks] == sorted(p for p, _ in change.asks)
        assert len({p for p, _ in change.bids}) == len(change.bids)


def test_zero_amount_removals_and_inside_moves_happen():
    model = VenueModel(2)
    removals = inside = 0
    for _ in range(3000):
        best_bid, best_ask = model.best_bid(), model.best_ask()
        change = model.step()
        removals += sum(1 for _, amount in change.bids + change.asks if amount == 0)
        inside += any(best_bid < price < best_ask for price, amount in change.bids + change.asks if amount)
    assert removals > 300
    assert inside > 30


def test_two_venues_share_levels_and_cross_only_occasionally():
    binance, bitstamp = VenueModel("1:binance"), VenueModel("1:bitstamp")
    crossed = samples = 0
    for i in range(40_000):
        binance.step()
        bitstamp.step()
        if i % 20 == 0:
            samples += 1
            crossed += max(binance.best_bid(), bitstamp.best_bid()) > min(binance.best_ask(), bitstamp.best_ask())
    assert 0 < crossed < samples * 0.2
    shared = {p for p, _ in binance.levels()[0]} & {p for p, _ in bitstamp.levels()[0]}
    assert len(shared) > 50


def test_cross_above_bids_through_the_other_venues_ask_without_crossing_itself():
    model = VenueModel(4)
    other_ask = model.best_ask() - 2 * TICK
    change = model.cross_above(other_ask)
    assert model.best_bid() == other_ask + TICK
    assert model.best_ask() > model.best_bid()
    assert (other_ask + TICK, change.bids[0][1]) in change.bids
    below = VenueModel(4)
    other_bid = below.best_bid() - 2 * TICK
    below.cross_below(other_bid)
    assert below.best_ask() == other_bid - TICK
    assert below.best_bid() < below.best_ask()
