"""Every exchange's book behind one lock, and the merged top-N that is served from them.

Only books that are in step take part in the merged view: an exchange that is rebuilding contributes nothing
until its new book is loaded, and one whose book is behind the venue (its connection lags past the bound) nothing
until it has caught up, so no level is served that cannot be vouched for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from orderbook.book import VenueBook
from orderbook.merge import MergedTop, merge_top
from orderbook.quote import Quote, Side, walk


class ConsolidatedBook:
    def __init__(self, exchanges: Iterable[str], depth: int) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth = depth
        self.lock = threading.Lock()  # a gevent lock once the process is monkey-patched
        self._venue_books: dict[str, VenueBook | None] = dict.fromkeys(exchanges)
        self._behind: set[str] = set()
        self.in_step_venues: tuple[str, ...] = ()
        """The exchanges whose books are served now (:meth:`in_step`), in the order given: kept as they change,
        since it is asked on every change of the book and changes only when a venue comes or goes."""

    @property
    def exchanges(self) -> list[str]:
        return list(self._venue_books)

    def attach(self, exchange: str, book: VenueBook) -> None:
        """Serve ``book`` for ``exchange`` from now on (it is in step). Call with the lock held."""
        self._require(exchange)
        self._venue_books[exchange] = book
        self._behind.discard(exchange)
        self._served_changed()

    def detach(self, exchange: str) -> None:
        """Stop serving ``exchange`` (it is rebuilding or gone). Call with the lock held."""
        self._require(exchange)
        self._venue_books[exchange] = None
        self._behind.discard(exchange)
        self._served_changed()

    def set_behind(self, exchange: str, behind: bool) -> None:
        """``exchange``'s attached book is (or no longer is) too far behind the venue to serve: it stays attached
        and kept current, but takes no part in the merged view meanwhile. Call with the lock held."""
        self._require(exchange)
        if behind and self._venue_books[exchange] is not None:
            self._behind.add(exchange)
        else:
            self._behind.discard(exchange)
        self._served_changed()

    def in_step(self, exchange: str) -> bool:
        """Whether ``exchange``'s book is served: attached, and not behind."""
        return self._venue_books[exchange] is not None and exchange not in self._behind

    def book(self, exchange: str) -> VenueBook | None:
        return self._venue_books[exchange]

    def merged_top(self, depth: int | None = None) -> MergedTop:
        """The merged book's best ``depth`` levels a side (default: its depth)."""
        depth = depth or self.depth
        with self.lock:
            live = [(name, book) for name, book in self._venue_books.items()
                    if book is not None and name not in self._behind]
            bids = {name: book.top_bids(depth) for name, book in live}
            asks = {name: book.top_asks(depth) for name, book in live}
        return merge_top(bids, asks, depth)

    def quote(self, side: Side, amount: int, fees: Mapping[str, int] | None = None) -> Quote | None:
        """Walk every level of each venue in step (:func:`orderbook.quote.walk`); None while no venue is."""
        with self.lock:
            live = {name: book.iter_asks() if side is Side.BUY else book.iter_bids()
                    for name, book in self._venue_books.items() if book is not None and name not in self._behind}
            return walk(live, side, amount, fees) if live else None

    def _served_changed(self) -> None:
        self.in_step_venues = tuple(name for name in self._venue_books if self.in_step(name))

    def _require(self, exchange: str) -> None:
        if exchange not in self._venue_books:
            raise KeyError(f"unknown exchange {exchange!r}")


class BookPublisher:
    """Publishes the merged top-N when, and only when, it changed."""

    def __init__(self, book: ConsolidatedBook, publish: Callable[[MergedTop], None]) -> None:
        self._book = book
        self._publish = publish
        self._last: MergedTop | None = None

    @property
    def last(self) -> MergedTop | None:
        return self._last

    def refresh(self) -> bool:
        top = self._book.merged_top()
        if top == self._last:
            return False
        self._last = top
        self._publish(top)
        return True
