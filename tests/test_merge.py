"""The merge rule (docs/protocols.md, "Merging"): ordering, ties, one entry per venue and price, depth, spread."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook.merge import Level, MergedTop, merge_top

FAST = settings(max_examples=300, deadline=None)
EXCHANGES = ("binance", "bitstamp", "kraken")


def test_bids_descending_asks_ascending_with_spread():
    top = merge_top(
        {"binance": [(101, 1), (99, 2)], "bitstamp": [(100, 3)]},
        {"binance": [(103, 1)], "bitstamp": [(102, 2), (104, 1)]},
        depth=10,
    )
    assert top.bids == (Level("binance", 101, 1), Level("bitstamp", 100, 3), Level("binance", 99, 2))
    assert top.asks == (Level("bitstamp", 102, 2), Level("binance", 103, 1), Level("bitstamp", 104, 1))
    assert top.spread == 1


def test_equal_price_larger_amount_first_then_exchange_name():
    top = merge_top(
        {"bitstamp": [(100, 5)], "binance": [(100, 2)], "kraken": [(100, 5)]},
        {"bitstamp": [(200, 1)], "binance": [(200, 9)], "kraken": [(200, 1)]},
        depth=10,
    )
    assert top.bids == (Level("bitstamp", 100, 5), Level("kraken", 100, 5), Level("binance", 100, 2))
    assert top.asks == (Level("binance", 200, 9), Level("bitstamp", 200, 1), Level("kraken", 200, 1))


def test_levels_are_never_summed_across_exchanges():
    top = merge_top({"binance": [(100, 1)], "bitstamp": [(100, 1)]}, {}, depth=10)
    assert top.bids == (Level("binance", 100, 1), Level("bitstamp", 100, 1))


def test_depth_cuts_each_side():
    top = merge_top({"binance": [(5, 1), (4, 1), (3, 1)]}, {"bitstamp": [(6, 1), (7, 1)]}, depth=2)
    assert [level.price for level in top.bids] == [5, 4]
    assert [level.price for level in top.asks] == [6, 7]


def test_crossed_and_locked_spreads():
    crossed = merge_top({"binance": [(105, 1)]}, {"bitstamp": [(100, 1)]}, depth=10)
    assert crossed.spread == -5
    locked = merge_top({"binance": [(100, 1)]}, {"bitstamp": [(100, 1)]}, depth=10)
    assert locked.spread == 0


def test_no_spread_when_a_side_is_empty():
    assert merge_top({"binance": [(1, 1)]}, {"binance": []}, depth=10) == MergedTop(None, (Level("binance", 1, 1),), ())
    assert merge_top({}, {"bitstamp": [(2, 1)]}, depth=10).spread is None
    assert merge_top({}, {}, depth=10) == MergedTop(None, (), ())


# -- properties --------------------------------------------------------------------------------------------------

prices = st.integers(min_value=1, max_value=40)  # narrow: equal prices across venues are common
amounts = st.integers(min_value=1, max_value=4)  # narrow: equal amounts at equal prices too
side = st.dictionaries(prices, amounts, max_size=12)  # one exchange's side: price -> amount
books = st.dictionaries(st.sampled_from(EXCHANGES), st.tuples(side, side), max_size=3)
depths = st.integers(min_value=1, max_value=15)


def best_first(levels: dict[int, int], bids: bool) -> list[tuple[int, int]]:
    return sorted(levels.items(), reverse=bids)


def tops(books_, depth: int | None) -> tuple[dict[str, list[tuple[int, int]]], dict[str, list[tuple[int, int]]]]:
    bids = {name: best_first(b, True)[:depth] for name, (b, _) in books_.items()}
    asks = {name: best_first(a, False)[:depth] for name, (_, a) in books_.items()}
    return bids, asks


def all_levels(books_, index: int) -> set[Level]:
    return {Level(name, p, a) for name, sides in books_.items() for p, a in sides[index].items()}


def better_bid(x: Level, y: Level) -> bool:
    """x strictly ahead of y, per the rule, written out rather than as a sort key."""
    if x.price != y.price:
        return x.price > y.price
    if x.amount != y.amount:
        return x.amount > y.amount
    return x.exchange < y.exchange


def better_ask(x: Level, y: Level) -> bool:
    if x.price != y.price:
        return x.price < y.price
    if x.amount != y.amount:
        return x.amount > y.amount
    return x.exchange < y.exchange


@FAST
@given(books, depths)
def test_merge_properties(books_, depth):
    top = merge_top(*tops(books_, depth), depth=depth)
    for merged, index, better in ((top.bids, 0, better_bid), (top.asks, 1, better_ask)):
        everything = all_levels(books_, index)
        # depth respected, and nothing is dropped while there is room
        assert len(merged) == min(depth, len(everything))
        # each entry is a real level of its exchange, each (exchange, price) once
        assert set(merged) <= everything
        assert len({(level.exchange, level.price) for level in merged}) == len(merged)
        # strictly ordered by the rule
        assert all(better(a, b) for a, b in zip(merged, merged[1:]))
        # and it is the best part: nothing left out is ahead of anything kept
        left_out = everything - set(merged)
        assert not any(better(out, kept) for out in left_out for kept in merged)
    if top.bids and top.asks:
        assert top.spread == top.asks[0].price - top.bids[0].price
        best_bid = max(p for _, (b, _) in books_.items() for p in b)
        best_ask = min(p for _, (_, a) in books_.items() for p in a)
        assert top.spread == best_ask - best_bid  # negative when the venues cross
    else:
        assert top.spread is None


@FAST
@given(books, depths)
def test_merging_tops_equals_merging_full_books(books_, depth):
    assert merge_top(*tops(books_, depth), depth=depth) == merge_top(*tops(books_, None), depth=depth)


@FAST
@given(books, depths)
def test_merge_does_not_depend_on_exchange_order(books_, depth):
    reordered = dict(reversed(list(books_.items())))
    assert merge_top(*tops(books_, depth), depth=depth) == merge_top(*tops(reordered, depth), depth=depth)
