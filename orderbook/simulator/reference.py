"""Where each simulated market trades: a price for each symbol, the tick that suits it, and amounts to match.

A demo should look like the market: BTCUSDT in the tens of thousands, ETHBTC a few hundredths, XRPUSDT under a
dollar. Before this, a market's price depended on where its symbol stood in ``--symbol`` (the first at 0.05, the
others 0.05 to 1.00 by a checksum of the name), so ``--demo --symbol BTCUSDT`` showed Bitcoin at 0.05.

Each well-known asset has a price in U.S. dollars (:data:`USD_PRICES`: round figures of the mid-2020s; what
matters is the magnitude, not the day's price), and a symbol of two of them trades at base / quote: ETHUSDT 3,000,
BTCEUR 55,555.56, ETHBTC 3,000 / 60,000 = 0.05, the very market the simulator has always made for its default
symbol (same tick, same amounts, same seeded events: the golden tests hold). A symbol with an asset not in the
table keeps the old scheme (:func:`~orderbook.simulator.market.symbol_centre_ticks`).

The tick is a power of ten giving the price 1,000 to 9,999 ticks (ETHBTC 0.00001, XRPUSDT 0.0001, as on Binance),
but never coarser than 0.01 (BTCUSDT and ETHUSDT 0.01, as on Binance), never finer than 0.00000001 (the eight
decimals both venues write), and fine enough for the book's depth to stay above zero (a side spans about 1.45
ticks a level); only where eight decimals cannot do that is the price raised, as before. Amounts are drawn as
before (0.001 to 50 of the base asset) times a power of ten that brings each level near an ETH's worth: BTC
0.0001 to 5, SOL 0.01 to 500; at most ten times, so that every amount stays below the latency probes' markers
(1,000, :mod:`orderbook.simulator.probe`).

Pure functions of their arguments, exact (:class:`~decimal.Decimal`), so every run and both venues agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal

from orderbook.prices import DIGITS
from orderbook.simulator.listing import split_symbol
from orderbook.simulator.market import CENTRE_TICKS, ModelParams, symbol_centre_ticks

_STABLE = dict.fromkeys(("USDT", "USDC", "USD", "FDUSD", "TUSD", "BUSD", "USDP", "PAX", "DAI", "GUSD"), "1")

USD_PRICES: Mapping[str, Decimal] = {asset: Decimal(price) for asset, price in {
    "BTC": "60000", "ETH": "3000", "BNB": "600", "SOL": "150", "XRP": "0.5", "LTC": "80", "BCH": "400",
    "LINK": "15", "ADA": "0.4", "DOGE": "0.1", "DOT": "6", "TRX": "0.12", "XLM": "0.1", "UNI": "8", "AAVE": "100",
    **_STABLE,
    "EUR": "1.08", "GBP": "1.27", "CHF": "1.12", "AUD": "0.66", "SGD": "0.74", "JPY": "0.0067", "TRY": "0.03",
    "BRL": "0.18",
}.items()}
"""An asset's price in U.S. dollars: a reference for the magnitude of every pair of two of them."""

AMOUNT_REFERENCE = USD_PRICES["ETH"]
"""The worth amounts are scaled to: ETH's, whose amounts (the default ETHBTC's) are what the model draws."""

COARSEST_TICK_EXPONENT = -2
FINEST_TICK_EXPONENT = -8
TICKS_IN_PRICE_EXPONENT = 3
"""The price is 10**3 to 10**4 ticks (before the bounds above)."""
AMOUNT_EXPONENTS = (-3, 1)
"""The powers of ten amounts may be scaled by: at most 500 of the base asset, below the probes' 1,000."""


def reference_price(symbol: str) -> Decimal | None:
    """Base over quote for a symbol of two assets in :data:`USD_PRICES`; None for any other."""
    base, quote = split_symbol(symbol)
    if base not in USD_PRICES or quote not in USD_PRICES:
        return None
    return USD_PRICES[base] / USD_PRICES[quote]


def _ticks(price: Decimal, exponent: int) -> int:
    return int((price.scaleb(-exponent)).to_integral_value(ROUND_HALF_EVEN))


def market_params(symbol: str, levels: int, default: bool = False) -> ModelParams:
    """The model's parameters for ``symbol``'s market, ``levels`` deep a side (``default``: the simulator's
    default symbol, which the old scheme puts at 0.05)."""
    price = reference_price(symbol)
    if price is None:
        return ModelParams.with_levels(levels, CENTRE_TICKS if default else symbol_centre_ticks(symbol))
    floor = 2 * levels  # ModelParams.with_levels's: the deepest bid stays above zero
    exponent = max(FINEST_TICK_EXPONENT, min(COARSEST_TICK_EXPONENT, price.adjusted() - TICKS_IN_PRICE_EXPONENT))
    while _ticks(price, exponent) < floor and exponent > FINEST_TICK_EXPONENT:
        exponent -= 1
    base, _ = split_symbol(symbol)
    low, high = AMOUNT_EXPONENTS
    amounts = int((AMOUNT_REFERENCE / USD_PRICES[base]).log10().to_integral_value(ROUND_HALF_EVEN))
    return ModelParams(levels=levels, centre_ticks=max(floor, _ticks(price, exponent)), tick=10 ** (DIGITS + exponent),
                       amount_exponent=max(low, min(high, amounts)))
