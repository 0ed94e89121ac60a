"""The drift audit's comparison: a live book against a fresh snapshot of the same venue. Pure, no I/O.

Bitstamp has no sequence numbers, so a lost diff leaves no trace and a book can stay wrong for hours (ccxt issue
8106, PR 16331; docs/protocols.md). Now and then the feed fetches a snapshot and hands it here with the diffs it
applied recently. A level that differs is a divergence unless a diff newer than the snapshot touched that price
(the book moved on since the snapshot's moment). Only the prices both can vouch for are compared: inside the
live book's edge (a depth-limited first snapshot) and inside the audit snapshot's own depth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from orderbook.book import BookLevels, PriceLevel
from orderbook.exchanges.messages import BookDiff, BookSnapshot, Pause, in_slices
from orderbook.prices import format_decimal


@dataclass(frozen=True, slots=True)
class Divergence:
    side: str
    price: int
    ours: int
    """The live book's amount (0: no level)."""
    venue: int
    """The snapshot's amount (0: no level)."""

    def __str__(self) -> str:
        return (f"{self.side} {format_decimal(self.price)}: ours {format_decimal(self.ours)}, "
                f"venue {format_decimal(self.venue)}")


def touched_after(diffs: Iterable[BookDiff], snapshot_id: int) -> tuple[set[int], set[int]]:
    """The bid and ask prices that diffs newer than the snapshot changed."""
    bids: set[int] = set()
    asks: set[int] = set()
    for diff in diffs:
        if diff.final_id > snapshot_id:
            bids.update(price for price, _ in diff.bids)
            asks.update(price for price, _ in diff.asks)
    return bids, asks


def compare(
    ours: BookLevels, snapshot: BookSnapshot, recent: Iterable[BookDiff], snapshot_depth: int | None,
    pause: Pause | None = None,
) -> list[Divergence]:
    """Every level, best first per side, where ``ours`` (the live book's levels) and ``snapshot`` disagree and no
    newer diff explains it.

    ``snapshot_depth``: the most levels a side of the audit snapshot can have (a side that full may go deeper
    at the venue, so nothing past its worst price is compared); None: the snapshot is the whole book.
    ``pause``: called before each side, and between slices of the prices compared (see
    :func:`~orderbook.exchanges.messages.in_slices`).
    """
    touched_bids, touched_asks = touched_after(recent, snapshot.last_id)
    bid_floor = _tighter(ours.bid_floor, _edge(snapshot.bids, snapshot_depth), max)
    ask_ceiling = _tighter(ours.ask_ceiling, _edge(snapshot.asks, snapshot_depth), min)
    bids = _side("bid", ours.bids, snapshot.bids, touched_bids, lambda price: bid_floor is None or price >= bid_floor,
                 pause)
    asks = _side("ask", ours.asks, snapshot.asks, touched_asks,
                 lambda price: ask_ceiling is None or price <= ask_ceiling, pause)
    return sorted(bids, key=lambda d: -d.price) + sorted(asks, key=lambda d: d.price)


def _edge(levels: tuple[PriceLevel, ...], depth: int | None) -> int | None:
    return levels[-1][0] if depth is not None and len(levels) >= depth else None


def _tighter(a: int | None, b: int | None, pick: Callable[[int, int], int]) -> int | None:
    if a is None or b is None:
        return a if b is None else b
    return pick(a, b)


def _side(
    name: str,
    ours_levels: Iterable[PriceLevel],
    venue_levels: Iterable[PriceLevel],
    touched: set[int],
    inside: Callable[[int], bool],
    pause: Pause | None,
) -> list[Divergence]:
    if pause is not None:
        pause()
    ours = dict(ours_levels)
    venue = {price: amount for price, amount in venue_levels if amount}
    return [
        Divergence(name, price, ours.get(price, 0), venue.get(price, 0))
        for chunk in in_slices(list(ours.keys() | venue.keys()), pause) for price in chunk
        if ours.get(price, 0) != venue.get(price, 0) and price not in touched and inside(price)
    ]
