"""The book process publishes a symbol only while something reads it, and a reader that comes gets the book as it is.

A real Application, built but not started (no listener, no feed, no network): its books are changed as a feed
changes them (``SymbolFeed.changed`` after the venue book moved), and read as its gRPC streams, its serving
processes' links and the relay read them (:class:`~orderbook.serving.symbols.ServedSymbols`).
"""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from orderbook.app import Application
from orderbook.book import VenueBook
from orderbook.config import load_config
from orderbook.prices import parse_decimal
from orderbook.proto import orderbook_pb2
from orderbook.serving.symbols import BOOK

SYMBOLS = ("ETHBTC", "BTCUSDT", "ETHUSDT")


class Books:
    """The Application and one venue book per symbol, attached as a feed in step attaches it."""

    def __init__(self) -> None:
        config = load_config(["--metrics-addr", "off", "--grpc-addr", "127.0.0.1:0", "--symbol", ",".join(SYMBOLS)],
                             {})
        self.registry = CollectorRegistry()
        self.app = Application(config, self.registry)
        self.served = self.app.served
        self.venue = self.app.venue_names[0]
        self.feeds = {feed.symbol: feed for feed in self.app.feeds[0].symbols}
        self.books = {}
        for symbol, consolidated in self.app.consolidated.items():
            book = self.books[symbol] = VenueBook()
            book.load([(parse_decimal("0.05"), parse_decimal("1"))], [(parse_decimal("0.06"), parse_decimal("1"))])
            with consolidated.lock:
                consolidated.attach(self.venue, book)

    def set_best_bid(self, symbol: str, price: str, amount: str) -> None:
        """The venue's best bid of ``symbol`` changes, and its feed says so."""
        with self.app.consolidated[symbol].lock:
            self.books[symbol].apply([(parse_decimal(price), parse_decimal(amount))], [])
        self.feeds[symbol].changed(time.perf_counter())

    def set_behind(self, symbol: str, behind: bool) -> None:
        """The venue's connection falls behind (or catches up): its book leaves the merged book meanwhile."""
        with self.app.consolidated[symbol].lock:
            self.app.consolidated[symbol].set_behind(self.venue, behind)
        self.feeds[symbol].changed(time.perf_counter())

    def published(self, symbol: str) -> int:
        return self.served.broadcaster(symbol, 0).published_total

    def best_bid_metric(self, symbol: str) -> float | None:
        return self.registry.get_sample_value("orderbook_best_bid", {"symbol": symbol})


def best_bid(payload: bytes | None) -> tuple[float, float]:
    assert payload is not None
    level = orderbook_pb2.Summary.FromString(payload).bids[0]
    return level.price, level.amount


@pytest.fixture
def books() -> Books:
    return Books()


def always() -> bool:
    return True


@pytest.mark.parametrize("depth", [0, 1])
def test_a_symbol_nothing_reads_is_held_back_and_a_stream_that_comes_gets_it_current(books, depth):
    books.set_best_bid("BTCUSDT", "0.051", "2")
    books.set_best_bid("BTCUSDT", "0.052", "3")
    assert books.published("BTCUSDT") == 0, "nothing reads it: not merged, encoded nor published"

    stream = books.served.stream("BTCUSDT", depth, always)
    assert best_bid(next(stream)) == (0.052, 3.0), "the first summary is the book now, not one from before"
    books.set_best_bid("BTCUSDT", "0.053", "4")
    assert books.published("BTCUSDT") == 2, "read: every change is published at once"
    assert best_bid(next(stream)) == (0.053, 4.0)

    stream.close()
    books.set_best_bid("BTCUSDT", "0.054", "5")
    assert books.published("BTCUSDT") == 2, "its last stream gone: held back again"
    assert best_bid(next(books.served.stream("BTCUSDT", depth, always))) == (0.054, 5.0)


def test_only_the_symbols_read_are_published(books):
    books.set_best_bid("ETHBTC", "0.05", "2")
    stream = books.served.stream("ETHBTC", 0, always)
    next(stream)
    for symbol in SYMBOLS:
        books.set_best_bid(symbol, "0.051", "3")
    assert [books.published(symbol) for symbol in SYMBOLS] == [2, 0, 0]


def test_a_follower_reads_every_symbol_from_the_book_now(books):
    """The relay and the serving processes follow every symbol: each symbol held back is published before their
    first batch, and every change after it at once."""
    for symbol in reversed(SYMBOLS):
        books.set_best_bid(symbol, "0.052", "3")
    books.set_best_bid("BTCUSDT", "0.052", "6")
    assert [books.published(symbol) for symbol in SYMBOLS] == [0, 0, 0]
    follow = books.served.follow(always)
    first = next(follow)
    assert [symbol for kind, symbol in first if kind == BOOK] == list(SYMBOLS), "every book, in configured order"
    assert [books.published(symbol) for symbol in SYMBOLS] == [1, 1, 1]
    assert best_bid(books.served.summary("BTCUSDT")) == (0.052, 6.0)
    assert best_bid(books.served.summary("ETHUSDT")) == (0.052, 3.0)

    books.set_best_bid("ETHUSDT", "0.053", "4")
    assert next(follow) == [(BOOK, "ETHUSDT")]
    assert best_bid(books.served.summary("ETHUSDT")) == (0.053, 4.0)
    follow.close()
    books.set_best_bid("ETHUSDT", "0.054", "5")
    assert books.published("ETHUSDT") == 2, "no follower, no stream: held back again"
    assert best_bid(books.served.summary("ETHUSDT")) == (0.054, 5.0)


def test_the_summary_asked_for_is_current(books):
    books.set_best_bid("ETHUSDT", "0.052", "3")
    assert best_bid(books.served.summary("ETHUSDT")) == (0.052, 3.0)


def test_metrics_show_the_book_now_for_a_symbol_held_back(books):
    books.set_best_bid("BTCUSDT", "0.052", "3")
    assert books.published("BTCUSDT") == 0
    assert books.best_bid_metric("BTCUSDT") == 0.052


def test_a_held_back_symbols_state_and_metrics_are_the_books_now(books):
    """Held back is only the summary: Symbols (and health) follow every venue that comes or goes, /metrics' best
    prices are the book now, and a stream that comes gets the book as the venues in step make it."""
    books.set_best_bid("BTCUSDT", "0.052", "3")
    assert books.served.state("BTCUSDT").exchanges_in_step == (books.venue,)
    assert books.best_bid_metric("BTCUSDT") == 0.052, "merged at the scrape, not the last published"
    books.set_behind("BTCUSDT", True)
    assert books.served.state("BTCUSDT").exchanges_in_step == ()
    assert books.best_bid_metric("BTCUSDT") is None, "the venue behind: no level is vouched for"
    assert books.published("BTCUSDT") == 0

    stream = books.served.stream("BTCUSDT", 0, always)
    assert not orderbook_pb2.Summary.FromString(next(stream)).bids, "the book now: without the venue behind"
    books.set_behind("BTCUSDT", False)
    assert best_bid(next(stream)) == (0.052, 3.0)
    assert books.best_bid_metric("BTCUSDT") == 0.052
