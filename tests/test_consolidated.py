"""The consolidated view: only attached (in-step) books are served, and a summary goes out only on change."""

from __future__ import annotations

import pytest

from orderbook.book import VenueBook
from orderbook.consolidated import BookPublisher, ConsolidatedBook
from orderbook.merge import Level, MergedTop


def book_of(bids, asks) -> VenueBook:
    book = VenueBook()
    book.load(bids, asks)
    return book


@pytest.fixture
def books():
    return book_of([(100, 1), (99, 2), (98, 3)], [(101, 1), (102, 2)]), book_of([(100, 5)], [(103, 1)])


def test_nothing_attached_serves_nothing():
    consolidated = ConsolidatedBook(["binance", "bitstamp"], depth=10)
    assert consolidated.exchanges == ["binance", "bitstamp"]
    assert not consolidated.in_step("binance") and consolidated.book("binance") is None
    assert consolidated.merged_top() == MergedTop(None, (), ())


def test_merged_top_only_from_attached_books(books):
    binance, bitstamp = books
    consolidated = ConsolidatedBook(["binance", "bitstamp"], depth=2)
    with consolidated.lock:
        consolidated.attach("binance", binance)
    assert consolidated.in_step("binance") and not consolidated.in_step("bitstamp")
    assert consolidated.book("binance") is binance
    assert consolidated.merged_top() == MergedTop(
        1, (Level("binance", 100, 1), Level("binance", 99, 2)), (Level("binance", 101, 1), Level("binance", 102, 2))
    )
    with consolidated.lock:
        consolidated.attach("bitstamp", bitstamp)
    assert consolidated.merged_top() == MergedTop(
        1, (Level("bitstamp", 100, 5), Level("binance", 100, 1)), (Level("binance", 101, 1), Level("binance", 102, 2))
    )
    with consolidated.lock:
        consolidated.detach("binance")
    assert consolidated.merged_top() == MergedTop(3, (Level("bitstamp", 100, 5),), (Level("bitstamp", 103, 1),))
    assert not consolidated.in_step("binance")


def test_the_venues_in_step_follow_every_attach_detach_and_lag_in_the_order_given(books):
    binance, bitstamp = books
    consolidated = ConsolidatedBook(["binance", "bitstamp"], depth=2)
    assert consolidated.in_step_venues == ()
    with consolidated.lock:
        consolidated.attach("bitstamp", bitstamp)
        consolidated.attach("binance", binance)
    assert consolidated.in_step_venues == ("binance", "bitstamp")
    with consolidated.lock:
        consolidated.set_behind("binance", True)
    assert consolidated.in_step_venues == ("bitstamp",)
    with consolidated.lock:
        consolidated.set_behind("binance", False)
        consolidated.detach("bitstamp")
    assert consolidated.in_step_venues == ("binance",)
    with consolidated.lock:
        consolidated.set_behind("bitstamp", True)  # not attached: nothing to leave
        consolidated.detach("binance")
    assert consolidated.in_step_venues == ()


def test_merged_top_reads_the_attached_book_live(books):
    binance, _ = books
    consolidated = ConsolidatedBook(["binance"], depth=1)
    consolidated.attach("binance", binance)
    binance.apply([(100, 0)], [])
    assert consolidated.merged_top().bids == (Level("binance", 99, 2),)


def test_unknown_exchange_and_bad_depth():
    consolidated = ConsolidatedBook(["binance"], depth=1)
    with pytest.raises(KeyError):
        consolidated.attach("kraken", VenueBook())
    with pytest.raises(KeyError):
        consolidated.detach("kraken")
    with pytest.raises(ValueError):
        ConsolidatedBook(["binance"], depth=0)


def test_publisher_publishes_only_on_change(books):
    binance, bitstamp = books
    consolidated = ConsolidatedBook(["binance", "bitstamp"], depth=2)
    published: list[MergedTop] = []
    publisher = BookPublisher(consolidated, published.append)
    assert publisher.last is None

    assert publisher.refresh()  # the first view, even an empty one, is news
    assert published == [MergedTop(None, (), ())]
    assert not publisher.refresh()
    assert len(published) == 1

    consolidated.attach("binance", binance)
    assert publisher.refresh() and len(published) == 2
    assert publisher.last == published[-1] == consolidated.merged_top()
    assert not publisher.refresh() and not publisher.refresh()
    assert len(published) == 2

    binance.apply([(98, 7)], [])  # below the served depth of 2: the served view is unchanged
    assert not publisher.refresh() and len(published) == 2

    binance.apply([(99, 4)], [])  # an amount inside the top 2 changed
    assert publisher.refresh() and published[-1].bids == (Level("binance", 100, 1), Level("binance", 99, 4))

    consolidated.attach("bitstamp", bitstamp)
    assert publisher.refresh() and published[-1].bids[0] == Level("bitstamp", 100, 5)

    consolidated.detach("bitstamp")  # a venue dropping out is a change too
    assert publisher.refresh() and all(level.exchange == "binance" for level in published[-1].bids)
    assert len(published) == 5
