"""One exchange's order book: price levels kept sorted, no I/O, no locking of its own.

Both sides are :class:`~sortedcontainers.SortedDict` keyed so that iteration runs best level first: asks by
price, bids by negated price. An amount-only change at an existing price touches only the dict, not the sorted
key list. A crossed book is reported by :meth:`VenueBook.is_crossed`, never silently repaired: a cross inside
one venue means the sync logic is wrong, and hiding it would hide the bug.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from sortedcontainers import SortedDict

PriceLevel = tuple[int, int]
"""(price, amount), both scaled integers (see :mod:`orderbook.prices`)."""


@dataclass(frozen=True, slots=True)
class BookLevels:
    """A book's levels, best first, and its edges, at one moment: copied under the book's lock (~0.15 ms at
    1,000 levels a side), so that what is then done with them, an audit's comparison, can let others run."""

    bids: list[PriceLevel]
    asks: list[PriceLevel]
    bid_floor: int | None
    ask_ceiling: int | None


class VenueBook:
    __slots__ = ("_bids", "_asks", "bid_floor", "ask_ceiling")

    def __init__(self) -> None:
        self._bids: SortedDict = SortedDict()  # -price -> amount
        self._asks: SortedDict = SortedDict()  # price -> amount
        self.bid_floor: int | None = None
        """The lowest bid price this book can vouch for (a depth-limited snapshot's worst bid); None: no limit."""
        self.ask_ceiling: int | None = None
        """The highest ask price this book can vouch for; None: no limit."""

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self.bid_floor = self.ask_ceiling = None

    def load(
        self,
        bids: Iterable[PriceLevel],
        asks: Iterable[PriceLevel],
        bid_floor: int | None = None,
        ask_ceiling: int | None = None,
    ) -> None:
        """Replace the whole book (a snapshot). Zero amounts are not levels.

        ``bid_floor``/``ask_ceiling``: where a depth-limited snapshot stops. Past them the venue's levels are
        unknown until they change (docs/protocols.md), so a change out there is not kept: what the book holds is
        exactly the venue's book between the two edges.
        """
        self._bids = SortedDict({-price: amount for price, amount in bids if amount})
        self._asks = SortedDict({price: amount for price, amount in asks if amount})
        self.bid_floor, self.ask_ceiling = bid_floor, ask_ceiling

    def replace(self, other: VenueBook) -> None:
        """Take ``other``'s levels and edges (a deeper book of the same venue at the same moment), keeping this
        object, which the consolidated book serves. ``other`` is not to be used afterwards."""
        self._bids, self._asks = other._bids, other._asks
        self.bid_floor, self.ask_ceiling = other.bid_floor, other.ask_ceiling

    def apply(self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel], watch: int = 0) -> bool:
        """Set each level to its new absolute amount; zero removes the level. Levels past an edge are not kept.

        Returns whether the change may have altered the best ``watch`` levels of either side (with ``watch`` 0:
        whether there was any level at all), so that a caller serving only the top of the book can skip the
        work when a diff only moved deeper levels. A level at or better than the ``watch``-th best is in reach.
        """
        touched = False
        side = self._bids
        bound = side.keys()[watch - 1] if 0 < watch <= len(side) else None
        edge = None if self.bid_floor is None else -self.bid_floor
        for price, amount in bids:
            key = -price
            if edge is not None and key > edge:
                continue
            if bound is None or key <= bound:
                touched = True
            if amount:
                side[key] = amount
            else:
                side.pop(key, None)
        side = self._asks
        bound = side.keys()[watch - 1] if 0 < watch <= len(side) else None
        edge = self.ask_ceiling
        for price, amount in asks:
            if edge is not None and price > edge:
                continue
            if bound is None or price <= bound:
                touched = True
            if amount:
                side[price] = amount
            else:
                side.pop(price, None)
        return touched

    def top_bids(self, depth: int) -> list[PriceLevel]:
        """The best ``depth`` bids, highest price first."""
        bids = self._bids
        return [(-key, bids[key]) for key in islice(bids, depth)]

    def top_asks(self, depth: int) -> list[PriceLevel]:
        """The best ``depth`` asks, lowest price first."""
        asks = self._asks
        return [(key, asks[key]) for key in islice(asks, depth)]

    def iter_bids(self) -> Iterator[PriceLevel]:
        """Every bid, highest price first, taken lazily: a walk that stops early reads no more of the book. The
        book must not change while the iterator is in use."""
        bids = self._bids
        return ((-key, bids[key]) for key in bids)

    def iter_asks(self) -> Iterator[PriceLevel]:
        """Every ask, lowest price first, taken lazily (as :meth:`iter_bids`)."""
        asks = self._asks
        return ((key, asks[key]) for key in asks)

    def levels(self) -> BookLevels:
        """A copy of every level and the edges, as they are now."""
        return BookLevels(self.bids(), self.asks(), self.bid_floor, self.ask_ceiling)

    def bids(self) -> list[PriceLevel]:
        return self.top_bids(len(self._bids))

    def asks(self) -> list[PriceLevel]:
        return self.top_asks(len(self._asks))

    @property
    def bid_depth(self) -> int:
        return len(self._bids)

    @property
    def ask_depth(self) -> int:
        return len(self._asks)

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask: impossible inside one healthy venue."""
        if not self._bids or not self._asks:
            return False
        return -self._bids.peekitem(0)[0] >= self._asks.peekitem(0)[0]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VenueBook):
            return NotImplemented
        return self._bids == other._bids and self._asks == other._asks

    def __repr__(self) -> str:
        return f"VenueBook(bids={self.bid_depth}, asks={self.ask_depth})"
