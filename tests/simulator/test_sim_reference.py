"""Each simulated market's price, tick and amounts from its symbol (:mod:`orderbook.simulator.reference`), checked
against figures worked out by hand; the exact decimals the venues write; and the old scheme kept where it must be."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from orderbook.prices import SCALE, format_decimal, parse_decimal
from orderbook.simulator.config import SimulatorConfig
from orderbook.simulator.market import CENTRE_TICKS, LOT, TICK, ModelParams, VenueModel, symbol_centre_ticks
from orderbook.simulator.reference import market_params, reference_price
from orderbook.simulator.simulator import Simulator

# symbol -> (price, tick) as written on the wire, worked out by hand from the table's dollar prices
EXPECTED = {
    "BTCUSDT": ("60000.00000000", "0.01000000"),  # Binance's own BTCUSDT tick
    "ETHUSDT": ("3000.00000000", "0.01000000"),
    "ETHBTC": ("0.05000000", "0.00001000"),  # the simulator's market of always
    "BNBBTC": ("0.01000000", "0.00001000"),
    "SOLUSDC": ("150.00000000", "0.01000000"),
    "XRPUSDT": ("0.50000000", "0.00010000"),
    "DOTUSD": ("6.00000000", "0.00100000"),
    "BTCEUR": ("55555.56000000", "0.01000000"),  # 60,000 / 1.08, to the cent
    "LTCBTC": ("0.00133300", "0.00000100"),  # 80 / 60,000 = 0.0013333...
    "XRPBTC": ("0.00000833", "0.00000001"),  # eight decimals at most: 833 ticks
    "ETHEUR": ("2777.78000000", "0.01000000"),
}


@pytest.mark.parametrize("symbol", EXPECTED)
def test_a_known_pair_trades_at_base_over_quote_on_a_tick_that_suits_it(symbol: str) -> None:
    params = market_params(symbol, 300)
    price, tick = EXPECTED[symbol]
    assert (format_decimal(params.centre_ticks * params.tick), format_decimal(params.tick)) == (price, tick)
    model = VenueModel(f"1:{symbol}", params)
    for _ in range(2000):
        change = model.step()
        for level_price, amount in change.bids + change.asks:
            assert level_price % params.tick == 0 and amount % LOT == 0
            assert parse_decimal(format_decimal(level_price)) == level_price  # eight decimals hold it exactly
    bids, asks = model.levels()
    assert 0.99 < bids[0][0] / parse_decimal(price) < asks[0][0] / parse_decimal(price) < 1.01
    assert all(level_price > 0 for level_price, _ in bids)


def test_the_default_ethbtc_market_is_the_one_of_before() -> None:
    assert reference_price("ETHBTC") == Decimal("0.05")
    assert market_params("ETHBTC", 300, default=True) == ModelParams.with_levels(300) == ModelParams()
    assert market_params("ETHBTC", 1000) == ModelParams.with_levels(1000)


def test_an_unknown_asset_keeps_the_old_scheme() -> None:
    assert reference_price("ZZZEUR") is None and reference_price("ETHZZZ") is None
    assert market_params("ZZZEUR", 300, default=True) == ModelParams.with_levels(300, CENTRE_TICKS)
    assert market_params("ZZZEUR", 300) == ModelParams.with_levels(300, symbol_centre_ticks("ZZZEUR"))


def test_a_deep_book_takes_a_finer_tick_and_only_eight_decimals_raise_the_price() -> None:
    deep = market_params("ETHBTC", 5000)
    assert (deep.tick, deep.centre_ticks * deep.tick) == (TICK // 10, SCALE // 20)  # still 0.05, at 0.000001
    model = VenueModel(3, deep)
    for _ in range(300):
        model.step()
    bids, asks = model.levels()
    assert len(bids) >= 5000 and bids[-1][0] > 0
    tiny = market_params("XRPBTC", 1000)  # 0.00000833 is 833 ticks of 0.00000001: too few for 1,000 levels
    assert (tiny.tick, tiny.centre_ticks) == (SCALE // 10**8, 2000)


@pytest.mark.parametrize(("symbol", "low", "high"), [("BTCUSDT", 0.0001, 5.02), ("ETHBTC", 0.001, 50.2),
                                                      ("SOLUSDT", 0.01, 502), ("DOGEUSDT", 0.01, 502)])
def test_amounts_are_near_an_ether_s_worth_and_below_the_probes_markers(symbol: str, low: float, high: float) -> None:
    model = VenueModel(7, market_params(symbol, 300))
    changes = [model.step() for _ in range(3000)]
    amounts = [amount for change in changes for _, amount in change.bids + change.asks if amount]
    assert low * SCALE <= min(amounts) and max(amounts) <= high * SCALE
    assert max(amounts) < 1000 * SCALE  # a latency probe's marker is 1,000 and up (orderbook.simulator.probe)


def test_each_market_s_book_and_listing_are_at_its_own_price_whatever_its_place_in_the_symbols() -> None:
    for symbols in (("BTCUSDT", "ETHBTC"), ("ETHBTC", "BTCUSDT")):
        simulator = Simulator(SimulatorConfig(symbol=symbols[0], extra_symbols=symbols[1:], paused=True))
        for symbol, (low, high) in {"BTCUSDT": (59_000, 61_000), "ETHBTC": (0.049, 0.051)}.items():
            for market in simulator.markets[symbol]:
                assert market is not None and market.model is not None
                best_bid, best_ask = market.truth.top_bids(1)[0][0], market.truth.top_asks(1)[0][0]
                assert low * SCALE < best_bid < best_ask < high * SCALE, (symbols, symbol, market.name)


def test_the_binance_listing_gives_each_market_its_tick_and_room_for_its_prices(simulator_factory) -> None:
    simulator = simulator_factory("--symbol", "BTCUSDT,ETHBTC")
    body = requests.get(f"{simulator.urls['binance_rest']}/api/v3/exchangeInfo", timeout=10).json()
    filters = {entry["symbol"]: entry["filters"][0] for entry in body["symbols"]}
    assert {symbol: (f["tickSize"], f["minPrice"], f["maxPrice"]) for symbol, f in filters.items()} == {
        "BTCUSDT": ("0.01000000", "0.01000000", "10000000.00000000"),
        "ETHBTC": ("0.00001000", "0.00001000", "922327.00000000")}
