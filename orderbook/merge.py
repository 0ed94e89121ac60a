"""The consolidated view: the product's merge rule (PROTOCOLS.md, "Merging").

Bids by price descending, asks by price ascending; at equal price the larger amount first; each exchange's
level stays its own entry. Ties at equal price and amount are ordered by exchange name, so the result is
deterministic. The top ``depth`` of the merged book always lies within the union of each exchange's top
``depth``, so merging only those is exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from orderbook.book import PriceLevel


class Level(NamedTuple):
    exchange: str
    price: int
    amount: int


class MergedTop(NamedTuple):
    """The served view. ``spread`` is None when either side is empty (there is no spread to speak of)."""

    spread: int | None
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


# Sort keys are plain tuples compared natively (no key function), and Level objects are made only for the
# levels kept: this runs on every change of the top of either book.


def merge_bids(tops: Mapping[str, Sequence[PriceLevel]], depth: int) -> tuple[Level, ...]:
    rows = [(-price, -amount, exchange) for exchange, top in tops.items() for price, amount in top]
    rows.sort()
    return tuple([Level(exchange, -price, -amount) for price, amount, exchange in rows[:depth]])


def merge_asks(tops: Mapping[str, Sequence[PriceLevel]], depth: int) -> tuple[Level, ...]:
    rows = [(price, -amount, exchange) for exchange, top in tops.items() for price, amount in top]
    rows.sort()
    return tuple([Level(exchange, price, -amount) for price, amount, exchange in rows[:depth]])


def merge_top(
    bids: Mapping[str, Sequence[PriceLevel]],
    asks: Mapping[str, Sequence[PriceLevel]],
    depth: int,
) -> MergedTop:
    """Merge each exchange's best levels (best first, at least ``depth`` of them where it has them)."""
    merged_bids = merge_bids(bids, depth)
    merged_asks = merge_asks(asks, depth)
    spread = merged_asks[0].price - merged_bids[0].price if merged_bids and merged_asks else None
    return MergedTop(spread, merged_bids, merged_asks)
