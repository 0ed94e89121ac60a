"""One exchange's sorted book, checked on examples and against a plain-dict model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook.book import VenueBook

FAST = settings(max_examples=150, deadline=None)


def book_of(bids, asks) -> VenueBook:
    book = VenueBook()
    book.load(bids, asks)
    return book


def test_load_sorts_each_side_best_first():
    book = book_of([(100, 1), (102, 2), (101, 3)], [(105, 1), (103, 2), (104, 3)])
    assert book.bids() == [(102, 2), (101, 3), (100, 1)]
    assert book.asks() == [(103, 2), (104, 3), (105, 1)]
    assert (book.bid_depth, book.ask_depth) == (3, 3)


def test_load_replaces_everything_and_skips_zero_amounts():
    book = book_of([(100, 1)], [(105, 1)])
    book.load([(90, 5), (91, 0)], [(95, 0), (96, 7)])
    assert book.bids() == [(90, 5)]
    assert book.asks() == [(96, 7)]


def test_top_is_limited_and_best_first():
    book = book_of([(p, p) for p in range(1, 11)], [(p, p) for p in range(11, 21)])
    assert book.top_bids(3) == [(10, 10), (9, 9), (8, 8)]
    assert book.top_asks(3) == [(11, 11), (12, 12), (13, 13)]
    assert book.top_bids(0) == [] and book.top_asks(0) == []
    assert book.top_bids(50) == book.bids() and len(book.bids()) == 10


def test_apply_sets_absolute_amounts_and_zero_removes():
    book = book_of([(100, 1), (99, 1)], [(101, 1), (102, 1)])
    book.apply([(100, 5), (99, 0), (98, 2)], [(101, 0), (103, 4)])
    assert book.bids() == [(100, 5), (98, 2)]
    assert book.asks() == [(102, 1), (103, 4)]


def test_removing_a_missing_level_is_a_no_op():
    book = book_of([(100, 1)], [(101, 1)])
    book.apply([(50, 0)], [(500, 0)])
    assert book.bids() == [(100, 1)] and book.asks() == [(101, 1)]


def test_the_same_price_on_both_sides_is_two_levels():
    book = VenueBook()
    book.apply([(100, 1)], [(100, 2)])
    assert book.bids() == [(100, 1)] and book.asks() == [(100, 2)]


def test_clear_empties_both_sides():
    book = book_of([(100, 1)], [(101, 1)])
    book.clear()
    assert book.bids() == [] and book.asks() == [] and (book.bid_depth, book.ask_depth) == (0, 0)


def test_equality_is_by_levels():
    assert book_of([(1, 1)], [(2, 1)]) == book_of([(1, 1)], [(2, 1)])
    assert book_of([(1, 1)], [(2, 1)]) != book_of([(1, 2)], [(2, 1)])
    assert book_of([(1, 1)], [(2, 1)]) != book_of([(2, 1)], [(1, 1)])  # sides matter
    assert VenueBook() == VenueBook()
    assert VenueBook() != "not a book"


def test_is_crossed():
    assert not VenueBook().is_crossed()
    assert not book_of([(100, 1)], []).is_crossed()
    assert not book_of([], [(100, 1)]).is_crossed()
    assert not book_of([(99, 1)], [(100, 1)]).is_crossed()
    assert book_of([(100, 1)], [(100, 1)]).is_crossed()  # locked counts as crossed
    assert book_of([(101, 1), (50, 1)], [(100, 1), (200, 1)]).is_crossed()


def test_crossed_input_is_kept_not_repaired():
    book = book_of([(101, 1)], [(100, 1)])
    assert book.bids() == [(101, 1)] and book.asks() == [(100, 1)]


prices = st.integers(min_value=1, max_value=60)  # a narrow range so that updates hit existing levels
amounts = st.integers(min_value=0, max_value=5)  # zero often: removals, including of missing levels
levels = st.lists(st.tuples(prices, amounts), max_size=8)
snapshot_levels = st.lists(st.tuples(prices, amounts), max_size=8, unique_by=lambda level: level[0])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("apply"), levels, levels),
        st.tuples(st.just("load"), snapshot_levels, snapshot_levels),  # a snapshot lists each price once
        st.just(("clear", [], [])),
    ),
    max_size=25,
)


class DictModel:
    """The obvious book: a dict per side; sorting happens only when read."""

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def run(self, kind, bids, asks) -> None:
        if kind in ("load", "clear"):
            self.bids, self.asks = {}, {}
        for side, changes in ((self.bids, bids), (self.asks, asks)):
            for price, amount in changes:
                if amount:
                    side[price] = amount
                else:
                    side.pop(price, None)

    def sorted_bids(self) -> list[tuple[int, int]]:
        return sorted(self.bids.items(), reverse=True)

    def sorted_asks(self) -> list[tuple[int, int]]:
        return sorted(self.asks.items())


@FAST
@given(operations, st.integers(min_value=0, max_value=12))
def test_book_matches_a_dict_model(ops, depth):
    book, model = VenueBook(), DictModel()
    for kind, bids, asks in ops:
        if kind == "clear":
            book.clear()
        else:
            getattr(book, kind)(bids, asks)
        model.run(kind, bids, asks)
        assert book.bids() == model.sorted_bids()
        assert book.asks() == model.sorted_asks()
    assert book.top_bids(depth) == model.sorted_bids()[:depth]
    assert book.top_asks(depth) == model.sorted_asks()[:depth]
    assert (book.bid_depth, book.ask_depth) == (len(model.bids), len(model.asks))
    best_bid, best_ask = model.sorted_bids()[:1], model.sorted_asks()[:1]
    assert book.is_crossed() == bool(best_bid and best_ask and best_bid[0][0] >= best_ask[0][0])


level_changes = st.lists(st.tuples(st.integers(1, 30), st.integers(0, 3)), max_size=5)


@FAST
@given(
    st.lists(st.tuples(st.integers(1, 30), st.integers(1, 3)), max_size=20),
    st.lists(st.tuples(st.integers(1, 30), st.integers(1, 3)), max_size=20),
    level_changes,
    level_changes,
    st.integers(min_value=1, max_value=6),
)
def test_apply_reports_every_change_that_reaches_the_watched_top(bids, asks, bid_changes, ask_changes, watch):
    """No false negatives: whenever the best ``watch`` levels differ after a diff, apply() said so."""
    book = book_of(bids, asks)
    before = (book.top_bids(watch), book.top_asks(watch))
    touched = book.apply(bid_changes, ask_changes, watch)
    if (book.top_bids(watch), book.top_asks(watch)) != before:
        assert touched


def test_apply_says_untouched_for_changes_below_the_watched_top():
    book = book_of([(p, 1) for p in range(1, 21)], [(p, 1) for p in range(21, 41)])
    assert not book.apply([(5, 2), (1, 0)], [(35, 0), (39, 4)], watch=10)
    assert book.apply([(11, 2)], [], watch=10)  # the 10th best bid
    assert book.apply([], [(20, 1)], watch=10)  # a new best ask
    assert book.apply([(3, 1)], [], watch=0)  # watching everything
