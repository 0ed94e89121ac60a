"""Price for size: what filling an amount costs across the venues' books, walked best level first (issue 24).

The walk takes each venue's side, best level first, as a lazy iterator (:meth:`VenueBook.iter_asks`), and merges
them k ways as it goes (``heapq.merge``), so a walk costs the levels it takes (times log of the number of venues),
not the size of the books. It orders the levels by their price net of the venue's taker fee, price x (1 + fee)
for a buy and price x (1 - fee) for a sell (with no fees: by price); at equal net price the larger amount comes
first, then the exchange name, as in the merge rule (docs/protocols.md, "Merging"), so the route is unique.

Everything is exact: amounts and prices are the books' scaled integers (:mod:`orderbook.prices`), fees too, and a
level's cost is ``taken x price x (SCALE +/- fee)``, an integer scaled by :data:`COST_SCALE`. Doubles appear only
in :class:`Quote`'s figures, each one correctly rounded from the exact value. Pure: no I/O, no locking; the caller
keeps the books still while a walk iterates them.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum

from orderbook.book import PriceLevel
from orderbook.prices import SCALE

COST_SCALE = SCALE**3
"""A cost is amount (scaled) x price (scaled) x fee factor (scaled): three scales."""

MAX_FEE = SCALE // 10
"""Fees are fractions in [0, 0.1): scaled, below this."""


class Side(Enum):
    BUY = "buy"
    """Take the asks, lowest (net) price first."""
    SELL = "sell"
    """Take the bids, highest (net) price first."""


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One venue's part of a walk: ``amount`` (scaled) for ``cost`` (scaled by :data:`COST_SCALE`)."""

    exchange: str
    amount: int
    cost: int

    @property
    def average_price(self) -> float:
        return _ratio(self.cost, self.amount)


@dataclass(frozen=True, slots=True)
class Quote:
    """A walk's outcome, exact. ``worst_price`` is the last level taken's price as the venue quotes it (None when
    nothing was taken); ``fills`` one per venue that took part, the largest first (then by exchange name)."""

    amount: int
    filled: int
    cost: int
    worst_price: int | None
    fills: tuple[VenueFill, ...]

    @property
    def average_price(self) -> float:
        """Quote asset per base asset over what is filled (net of fees if the walk was); NaN when nothing is."""
        return _ratio(self.cost, self.filled)


def _ratio(cost: int, amount: int) -> float:
    """``cost / amount`` as a price (the nearest double: int / int division is correctly rounded); NaN for 0."""
    return cost / (amount * SCALE**2) if amount else math.nan


def fee_factor(side: Side, fee: int) -> int:
    """``1 + fee`` (buy) or ``1 - fee`` (sell), scaled: what a level's price is multiplied by net of the fee."""
    return SCALE + fee if side is Side.BUY else SCALE - fee


def _ordered(exchange: str, levels: Iterable[PriceLevel], side: Side,
             factor: int) -> Iterator[tuple[int, int, str, int, int]]:
    """``levels`` as merge keys: (net price, best first ascending; minus amount; exchange; price; amount)."""
    if side is Side.BUY:
        for price, amount in levels:
            yield price * factor, -amount, exchange, price, amount
    else:
        for price, amount in levels:
            yield -price * factor, -amount, exchange, price, amount


def walk(sides: Mapping[str, Iterable[PriceLevel]], side: Side, amount: int,
         fees: Mapping[str, int] | None = None) -> Quote:
    """Fill ``amount`` (scaled, > 0) from ``sides``: each venue's asks (BUY) or bids (SELL), best first. With
    ``fees`` (each venue's scaled taker fee; a venue not named pays none) the levels are ordered and priced net of
    them; without, by the venues' own prices. Iterates each side only as far as the walk goes."""
    fees = fees or {}
    factors = {exchange: fee_factor(side, fees.get(exchange, 0)) for exchange in sides}
    merged = heapq.merge(*(_ordered(exchange, levels, side, factors[exchange]) for exchange, levels in sides.items()))
    remaining = amount
    amounts: dict[str, int] = {}
    costs: dict[str, int] = {}
    worst = None
    if remaining > 0:  # an amount below the scale's last digit rounds to nothing to fill
        for _, _, exchange, price, size in merged:
            taken = size if size < remaining else remaining
            amounts[exchange] = amounts.get(exchange, 0) + taken
            costs[exchange] = costs.get(exchange, 0) + taken * price * factors[exchange]
            worst = price
            remaining -= taken
            if not remaining:
                break
    fills = sorted((VenueFill(exchange, taken, costs[exchange]) for exchange, taken in amounts.items()),
                   key=lambda fill: (-fill.amount, fill.exchange))
    return Quote(amount, amount - remaining, sum(costs.values()), worst, tuple(fills))
