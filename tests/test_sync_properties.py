"""The sync rules as properties, on generated but consistent market histories.

A history is an initial book and a run of diffs; the true book after ``k`` diffs is known (a plain dict), and a
snapshot "at k" is that true book with the id of the k-th diff. Because snapshots and diffs agree, a correct sync
must end on the true book whatever the order of buffering, snapshot and live diffs, and the tests can state
exactly where a gap, a stale diff or a reordering must be noticed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook.exchanges.messages import BookDiff, BookSnapshot
from orderbook.exchanges.sync import BookSync, Outcome
from orderbook.exchanges.binance import BinanceSync
from orderbook.exchanges.bitstamp import BitstampSync

FAST = settings(max_examples=120, deadline=None)

# Bids below asks: a venue's own book never crosses, and a sync that sees it cross rebuilds (tested apart).
bid_prices = st.integers(min_value=1, max_value=12)
ask_prices = st.integers(min_value=13, max_value=25)


def changes(prices: st.SearchStrategy[int]) -> st.SearchStrategy[list[tuple[int, int]]]:
    return st.lists(st.tuples(prices, st.integers(min_value=0, max_value=4)), max_size=4, unique_by=lambda x: x[0])


def initial_side(prices: st.SearchStrategy[int]) -> st.SearchStrategy[dict[int, int]]:
    return st.dictionaries(prices, st.integers(min_value=1, max_value=4), max_size=8)


@dataclass(frozen=True)
class History:
    initial_id: int
    initial: tuple[dict[int, int], dict[int, int]]
    diffs: tuple[BookDiff, ...]

    def truth(self, k: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The book after the first ``k`` diffs, as (bids best first, asks best first)."""
        bids, asks = dict(self.initial[0]), dict(self.initial[1])
        for diff in self.diffs[:k]:
            for side, levels in ((bids, diff.bids), (asks, diff.asks)):
                for price, amount in levels:
                    if amount:
                        side[price] = amount
                    else:
                        side.pop(price, None)
        return sorted(bids.items(), reverse=True), sorted(asks.items())

    def id_at(self, k: int) -> int:
        return self.diffs[k - 1].final_id if k else self.initial_id

    def snapshot(self, k: int, last_id: int | None = None) -> BookSnapshot:
        bids, asks = self.truth(k)
        return BookSnapshot(self.id_at(k) if last_id is None else last_id, tuple(bids), tuple(asks))


@st.composite
def histories(draw, binance: bool, min_diffs: int = 1, max_diffs: int = 10) -> History:
    count = draw(st.integers(min_value=min_diffs, max_value=max_diffs))
    start = draw(st.integers(min_value=1, max_value=10**12))
    diffs, next_id = [], start
    for _ in range(count):
        # Binance: each event covers ids U..u; Bitstamp: one microtimestamp, strictly increasing by any step
        width = draw(st.integers(min_value=1, max_value=4))
        first, final = (next_id, next_id + width - 1) if binance else (next_id + width, next_id + width)
        diffs.append(BookDiff(first, final, 0.0, tuple(draw(changes(bid_prices))), tuple(draw(changes(ask_prices)))))
        next_id = final + 1 if binance else final
    return History(start - 1, (draw(initial_side(bid_prices)), draw(initial_side(ask_prices))), tuple(diffs))


def book_of(sync: BookSync):
    return sync.book.bids(), sync.book.asks()


def assert_reset(sync: BookSync) -> None:
    assert not sync.in_step
    assert sync.last_id is None
    assert sync.buffered == 0
    assert book_of(sync) == ([], [])


# -- Binance ------------------------------------------------------------------------------------------------------


@FAST
@given(histories(binance=True), st.data())
def test_binance_contiguous_ids_all_apply(history, data):
    n = len(history.diffs)
    k = data.draw(st.integers(0, n), label="snapshot after diff")
    b = data.draw(st.integers(0, n), label="diffs delivered before the snapshot")
    sync = BinanceSync()
    for diff in history.diffs[:b]:
        assert sync.on_diff(diff) is Outcome.BUFFERED
    assert sync.on_snapshot(history.snapshot(k)) is Outcome.APPLIED
    assert sync.in_step and sync.buffered == 0  # the buffered diffs the snapshot reflects are dropped
    assert book_of(sync) == history.truth(max(k, b))
    assert sync.last_id == history.id_at(max(k, b))
    for i in range(b, n):
        diff = history.diffs[i]
        expected = Outcome.STALE if diff.final_id < history.id_at(k) else Outcome.APPLIED
        assert sync.on_diff(diff) is expected
        assert book_of(sync) == history.truth(max(k, i + 1))
    assert book_of(sync) == history.truth(n)
    assert sync.last_id == history.id_at(n)


@FAST
@given(histories(binance=True, min_diffs=3), st.data())
def test_binance_gap_is_noticed_at_the_first_diff_after_the_hole(history, data):
    n = len(history.diffs)
    k = data.draw(st.integers(0, n - 2), label="snapshot after diff")
    b = data.draw(st.integers(0, k), label="diffs delivered before the snapshot")
    hole_start = data.draw(st.integers(k, n - 2), label="first missing diff")
    hole_end = data.draw(st.integers(hole_start + 1, n - 1), label="first diff after the hole")
    sync = BinanceSync()
    for diff in history.diffs[:b]:
        sync.on_diff(diff)
    assert sync.on_snapshot(history.snapshot(k)) is Outcome.APPLIED
    for diff in history.diffs[b:hole_start]:
        assert sync.on_diff(diff) in (Outcome.APPLIED, Outcome.STALE)
    assert book_of(sync) == history.truth(hole_start)
    assert sync.on_diff(history.diffs[hole_end]) is Outcome.GAP
    assert_reset(sync)
    for diff in history.diffs[hole_end + 1:]:
        assert sync.on_diff(diff) is Outcome.BUFFERED  # waiting for a new snapshot
    assert book_of(sync) == ([], [])


@FAST
@given(histories(binance=True, min_diffs=4), st.data())
def test_binance_gap_inside_the_buffer_is_noticed_on_the_snapshot(history, data):
    n = len(history.diffs)
    k = data.draw(st.integers(0, n - 3), label="snapshot after diff")
    hole_start = data.draw(st.integers(k + 1, n - 2), label="first missing diff")
    hole_end = data.draw(st.integers(hole_start + 1, n - 1), label="first diff after the hole")
    sync = BinanceSync()
    for diff in history.diffs[:hole_start] + history.diffs[hole_end:]:
        assert sync.on_diff(diff) is Outcome.BUFFERED
    assert sync.on_snapshot(history.snapshot(k)) is Outcome.GAP
    assert_reset(sync)


@FAST
@given(histories(binance=True, min_diffs=2), st.data())
def test_binance_duplicates_and_old_events_are_stale(history, data):
    n = len(history.diffs)
    sync = BinanceSync()
    sync.on_snapshot(history.snapshot(0))
    for diff in history.diffs:
        assert sync.on_diff(diff) is Outcome.APPLIED
    replayed = data.draw(st.lists(st.integers(0, n - 2), min_size=1, max_size=5), label="old diffs again")
    for i in replayed:
        assert sync.on_diff(history.diffs[i]) is Outcome.STALE
        assert book_of(sync) == history.truth(n)
        assert sync.last_id == history.id_at(n)
    # The last event again has u == book id: docs/protocols.md applies it ("otherwise"), which changes nothing.
    sync.on_diff(history.diffs[-1])
    assert book_of(sync) == history.truth(n) and sync.last_id == history.id_at(n) and sync.in_step


@FAST
@given(histories(binance=True, min_diffs=2), st.data())
def test_binance_snapshot_too_old_keeps_the_buffer(history, data):
    n = len(history.diffs)
    s = data.draw(st.integers(1, n - 1), label="first diff the stream delivers")
    b = data.draw(st.integers(1, n - s), label="diffs buffered")
    old = data.draw(st.integers(0, s - 1), label="too-old snapshot after diff")
    sync = BinanceSync()
    for diff in history.diffs[s:s + b]:
        assert sync.on_diff(diff) is Outcome.BUFFERED
    assert sync.on_snapshot(history.snapshot(old)) is Outcome.SNAPSHOT_TOO_OLD
    assert not sync.in_step and sync.buffered == b and book_of(sync) == ([], [])
    good = data.draw(st.integers(s, n), label="good snapshot after diff")
    assert sync.on_snapshot(history.snapshot(good)) is Outcome.APPLIED
    assert sync.in_step and sync.buffered == 0
    assert book_of(sync) == history.truth(max(good, s + b))
    for diff in history.diffs[s + b:]:
        assert sync.on_diff(diff) in (Outcome.APPLIED, Outcome.STALE)
    assert book_of(sync) == history.truth(n)


def test_binance_snapshot_exactly_one_before_the_first_buffered_event_fits():
    # lastUpdateId + 1 == U is the exact fit of step 4, not "too old"
    sync = BinanceSync()
    sync.on_diff(BookDiff(101, 105, 0.0, ((5, 1),), ()))
    assert sync.on_snapshot(BookSnapshot(100, ((4, 1),), ())) is Outcome.APPLIED
    assert sync.book.bids() == [(5, 1), (4, 1)] and sync.last_id == 105
    sync = BinanceSync()
    sync.on_diff(BookDiff(102, 105, 0.0, ((5, 1),), ()))
    assert sync.on_snapshot(BookSnapshot(100, ((4, 1),), ())) is Outcome.SNAPSHOT_TOO_OLD


@FAST
@given(histories(binance=True, min_diffs=6, max_diffs=12), st.integers(1, 5))
def test_overflow_resets_and_starts_buffering_again(history, limit):
    for sync in (BinanceSync(max_buffered=limit), BitstampSync(max_buffered=limit)):
        for diff in history.diffs[:limit]:
            assert sync.on_diff(diff) is Outcome.BUFFERED
        assert sync.buffered == limit
        assert sync.on_diff(history.diffs[limit]) is Outcome.OVERFLOW
        assert_reset(sync)
        assert sync.on_diff(history.diffs[limit]) is Outcome.BUFFERED and sync.buffered == 1


# -- Bitstamp -----------------------------------------------------------------------------------------------------


def bitstamp_snapshot(history: History, k: int, data) -> BookSnapshot:
    """The true book after k diffs, stamped anywhere from the k-th diff up to just before the next."""
    low = history.id_at(k)
    high = history.diffs[k].first_id - 1 if k < len(history.diffs) else low + 10
    return history.snapshot(k, data.draw(st.integers(low, high), label="snapshot microtimestamp"))


@FAST
@given(histories(binance=False), st.data())
def test_bitstamp_increasing_microtimestamps_all_apply(history, data):
    n = len(history.diffs)
    s = data.draw(st.integers(0, n - 1), label="first diff the stream delivers")
    k = data.draw(st.integers(s + 1, n), label="snapshot after diff (at or after the first buffered)")
    b = data.draw(st.integers(k, n), label="diffs delivered before the snapshot")
    sync = BitstampSync()
    for diff in history.diffs[s:b]:
        assert sync.on_diff(diff) is Outcome.BUFFERED
    assert sync.on_snapshot(bitstamp_snapshot(history, k, data)) is Outcome.APPLIED
    assert sync.in_step and sync.buffered == 0
    assert book_of(sync) == history.truth(b)  # the diffs up to the snapshot's microtimestamp were dropped
    for i in range(b, n):
        assert sync.on_diff(history.diffs[i]) is Outcome.APPLIED
        assert book_of(sync) == history.truth(i + 1)
        assert sync.last_id == history.diffs[i].final_id


@FAST
@given(histories(binance=False), st.data())
def test_bitstamp_snapshot_with_nothing_buffered_is_taken_and_older_diffs_are_stale(history, data):
    """A quiet pair: nothing to compare with (the feed only asks after a quiet wait; see BitstampProtocol)."""
    n = len(history.diffs)
    k = data.draw(st.integers(0, n), label="snapshot after diff")
    sync = BitstampSync()
    assert sync.on_snapshot(bitstamp_snapshot(history, k, data)) is Outcome.APPLIED
    for i, diff in enumerate(history.diffs):
        assert sync.on_diff(diff) is (Outcome.STALE if i < k else Outcome.APPLIED)
    assert book_of(sync) == history.truth(n)


@FAST
@given(histories(binance=False, min_diffs=2), st.data())
def test_bitstamp_snapshot_older_than_the_first_buffered_diff_is_refused_and_the_buffer_kept(history, data):
    """The freshness rule: a snapshot stamped before the first buffered diff misses what happened in between."""
    n = len(history.diffs)
    s = data.draw(st.integers(1, n - 1), label="first diff the stream delivers")
    b = data.draw(st.integers(s + 1, n), label="diffs buffered up to")
    old = data.draw(st.integers(0, s), label="too-old snapshot after diff")
    sync = BitstampSync()
    for diff in history.diffs[s:b]:
        assert sync.on_diff(diff) is Outcome.BUFFERED
    assert sync.on_snapshot(bitstamp_snapshot(history, old, data)) is Outcome.SNAPSHOT_TOO_OLD
    assert not sync.in_step and sync.buffered == b - s and book_of(sync) == ([], [])
    good = data.draw(st.integers(s + 1, n), label="fresh snapshot after diff")
    assert sync.on_snapshot(bitstamp_snapshot(history, good, data)) is Outcome.APPLIED
    for diff in history.diffs[b:]:
        assert sync.on_diff(diff) in (Outcome.APPLIED, Outcome.STALE)
    assert book_of(sync) == history.truth(n)


def test_bitstamp_snapshot_at_the_first_buffered_microtimestamp_is_fresh_enough():
    sync = BitstampSync()
    sync.on_diff(BookDiff(1000, 1000, 0.0, ((5, 1),), ()))
    assert sync.on_snapshot(BookSnapshot(999, ((4, 1),), ())) is Outcome.SNAPSHOT_TOO_OLD
    assert sync.on_snapshot(BookSnapshot(1000, ((5, 1), (4, 1)), ())) is Outcome.APPLIED


@FAST
@given(histories(binance=False, min_diffs=2), st.data())
def test_bitstamp_non_increasing_microtimestamp_resets(history, data):
    n = len(history.diffs)
    sync = BitstampSync()
    sync.on_snapshot(history.snapshot(0))
    applied = data.draw(st.integers(1, n), label="diffs applied")
    for diff in history.diffs[:applied]:
        assert sync.on_diff(diff) is Outcome.APPLIED
    earlier = data.draw(st.integers(history.diffs[0].first_id, sync.last_id), label="repeated microtimestamp")
    late = BookDiff(earlier, earlier, 0.0, ((1, 1),), ())
    assert sync.on_diff(late) is Outcome.OUT_OF_ORDER
    assert_reset(sync)


@FAST
@given(histories(binance=False, min_diffs=3), st.data())
def test_bitstamp_reordered_buffered_pair_is_noticed_after_the_snapshot(history, data):
    n = len(history.diffs)
    k = data.draw(st.integers(1, n - 2), label="snapshot after diff (not before the first buffered)")
    i = data.draw(st.integers(k, n - 2), label="first of the swapped pair")
    delivered = list(history.diffs)
    delivered[i], delivered[i + 1] = delivered[i + 1], delivered[i]
    sync = BitstampSync()
    for diff in delivered:
        assert sync.on_diff(diff) is Outcome.BUFFERED
    assert sync.on_snapshot(bitstamp_snapshot(history, k, data)) is Outcome.OUT_OF_ORDER
    assert_reset(sync)


@FAST
@given(histories(binance=False, min_diffs=3), st.data())
def test_bitstamp_reordering_before_the_snapshot_does_not_matter(history, data):
    n = len(history.diffs)
    k = data.draw(st.integers(2, n), label="snapshot after diff")
    i = data.draw(st.integers(0, k - 2), label="first of the swapped pair")
    delivered = list(history.diffs)
    delivered[i], delivered[i + 1] = delivered[i + 1], delivered[i]
    sync = BitstampSync()
    for diff in delivered:
        sync.on_diff(diff)
    assert sync.on_snapshot(bitstamp_snapshot(history, k, data)) is Outcome.APPLIED
    assert book_of(sync) == history.truth(n)


def test_bitstamp_diff_equal_to_the_snapshot_microtimestamp_is_dropped_when_buffered():
    sync = BitstampSync()
    sync.on_diff(BookDiff(1000, 1000, 0.0, ((5, 1),), ()))
    sync.on_diff(BookDiff(1001, 1001, 0.0, ((6, 1),), ()))
    assert sync.on_snapshot(BookSnapshot(1000, ((4, 1),), ())) is Outcome.APPLIED
    assert sync.book.bids() == [(6, 1), (4, 1)] and sync.last_id == 1001


def test_bitstamp_live_diff_older_than_the_snapshot_is_stale():
    sync = BitstampSync()
    assert sync.on_snapshot(BookSnapshot(1000, ((4, 1),), ((9, 1),))) is Outcome.APPLIED
    assert sync.on_diff(BookDiff(999, 999, 0.0, ((5, 1),), ())) is Outcome.STALE
    assert sync.in_step and sync.book.bids() == [(4, 1)] and sync.last_id == 1000
    assert sync.on_diff(BookDiff(1001, 1001, 0.0, ((5, 1),), ())) is Outcome.APPLIED


# -- what a book must still be after each change ---------------------------------------------------------------------


@pytest.mark.parametrize("sync_class", [BinanceSync, BitstampSync])
def test_a_diff_that_crosses_the_venues_own_book_breaks_it(sync_class):
    sync = sync_class()
    assert sync.on_snapshot(BookSnapshot(10, ((5, 1), (4, 1)), ((6, 1), (7, 1)))) is Outcome.APPLIED
    assert sync.on_diff(BookDiff(11, 11, 0.0, ((6, 2),), ())) is Outcome.CROSSED  # bid at the best ask
    assert_reset(sync)


def test_a_crossed_snapshot_is_not_served():
    sync = BinanceSync()
    assert sync.on_snapshot(BookSnapshot(10, ((6, 1),), ((6, 1),))) is Outcome.CROSSED
    assert_reset(sync)


def test_a_depth_limited_snapshot_bounds_the_book_and_a_sweep_through_it_breaks_it():
    """Binance: levels outside the initial snapshot are unknown until they change (official docs)."""
    sync = BinanceSync(watch_depth=2, snapshot_limit=3)
    # bids came back full (3 of 3): they may go deeper; asks did not (2 of 3): that side is the whole book
    assert sync.on_snapshot(BookSnapshot(10, ((9, 1), (8, 1), (7, 1)), ((10, 1), (11, 1)))) is Outcome.APPLIED
    assert sync.book.bid_floor == 7 and sync.book.ask_ceiling is None
    assert sync.on_diff(BookDiff(11, 11, 0.0, ((6, 5),), ((20, 5),))) is Outcome.APPLIED
    assert sync.book.bids() == [(9, 1), (8, 1), (7, 1)]  # 6 is past the edge: not kept
    assert sync.book.asks() == [(10, 1), (11, 1), (20, 5)]
    assert sync.on_diff(BookDiff(12, 12, 0.0, ((9, 0),), ())) is Outcome.APPLIED  # 2 left inside the edge
    assert sync.on_diff(BookDiff(13, 13, 0.0, ((8, 0),), ())) is Outcome.PAST_SNAPSHOT  # 1 < the 2 served
    assert_reset(sync)


def test_recorded_diffs_cover_everything_applied_since_recording_began_until_they_are_forgotten():
    from orderbook.exchanges.sync import RECENT_DIFFS

    sync = BinanceSync()
    assert sync.recorded_since() is None
    sync.on_snapshot(BookSnapshot(100, ((5, 1),), ((9, 1),)))
    sync.on_diff(BookDiff(101, 102, 0.0, ((5, 2),), ()))
    assert sync.recent is None and sync.recorded_since() is None  # nothing kept unless an audit asks
    sync.start_recording()
    assert sync.recorded_since() == 102
    for i in range(RECENT_DIFFS + 5):
        sync.on_diff(BookDiff(103 + 2 * i, 104 + 2 * i, 0.0, ((5, i + 1),), ()))
    assert sync.recent is not None and len(sync.recent) == RECENT_DIFFS
    assert sync.recorded_since() == 102 + 2 * 5  # the five forgotten diffs ended at id 112
    sync.stop_recording()
    assert sync.recent is None and sync.recorded_since() is None


# -- deepening: a book in step on a shallow snapshot rebuilt in place on a deeper one ------------------------------


def cut(snapshot: BookSnapshot, limit: int | None) -> BookSnapshot:
    """The snapshot a venue answers when asked for ``limit`` levels a side (None: all)."""
    return BookSnapshot(snapshot.last_id, snapshot.bids[:limit], snapshot.asks[:limit])


def vouched(truth: tuple[list[tuple[int, int]], list[tuple[int, int]]], floor: int | None, ceiling: int | None):
    """The true book inside the edges a book vouches for: exactly what it must hold."""
    bids, asks = truth
    return ([level for level in bids if floor is None or level[0] >= floor],
            [level for level in asks if ceiling is None or level[0] <= ceiling])


@FAST
@given(histories(binance=True, min_diffs=1, max_diffs=12), st.data())
def test_binance_deepening_gives_the_true_book_inside_the_deeper_edges(history, data):
    count = len(history.diffs)
    first = data.draw(st.integers(min_value=0, max_value=count), "first snapshot after diff")
    recording = data.draw(st.integers(min_value=first, max_value=count), "recording after diff")
    deep_at = data.draw(st.integers(min_value=recording, max_value=count), "deeper snapshot after diff")
    shallow = data.draw(st.integers(min_value=1, max_value=4), "first snapshot's limit")
    deep = data.draw(st.one_of(st.none(), st.integers(min_value=shallow, max_value=9)), "deeper limit")
    sync = BinanceSync(snapshot_limit=shallow)
    assert sync.on_snapshot(cut(history.snapshot(first), shallow)) is Outcome.APPLIED
    for k in range(first, count):
        if k == recording:
            sync.start_recording()
        assert sync.on_diff(history.diffs[k]) is Outcome.APPLIED
    if recording == count:
        sync.start_recording()
    assert book_of(sync) == vouched(history.truth(count), sync.book.bid_floor, sync.book.ask_ceiling)

    snapshot = cut(history.snapshot(deep_at), deep)
    assert sync.deepen(snapshot, deep) is Outcome.APPLIED
    floor = snapshot.bids[-1][0] if deep is not None and len(snapshot.bids) >= deep else None
    ceiling = snapshot.asks[-1][0] if deep is not None and len(snapshot.asks) >= deep else None
    assert (sync.book.bid_floor, sync.book.ask_ceiling) == (floor, ceiling)
    assert book_of(sync) == vouched(history.truth(count), floor, ceiling)
    assert sync.in_step and sync.last_id == history.id_at(count)
    for k in range(count, len(history.diffs)):  # nothing left to apply: the book follows on from here as before
        assert sync.on_diff(history.diffs[k]) is Outcome.APPLIED


@FAST
@given(histories(binance=True, min_diffs=2, max_diffs=10), st.data())
def test_binance_a_deeper_snapshot_it_cannot_vouch_for_leaves_the_book_untouched(history, data):
    """Older than what was recorded (a diff after it was applied unrecorded), or newer than the stream."""
    count = len(history.diffs)
    recording = data.draw(st.integers(min_value=1, max_value=count - 1), "recording after diff")
    applied = data.draw(st.integers(min_value=recording, max_value=count - 1), "diffs applied")
    deep_at = data.draw(st.one_of(st.integers(min_value=0, max_value=recording - 1),
                                  st.integers(min_value=applied + 1, max_value=count)), "deeper snapshot after diff")
    sync = BinanceSync(snapshot_limit=2)
    assert sync.on_snapshot(cut(history.snapshot(0), 2)) is Outcome.APPLIED
    for k in range(applied):
        if k == recording:
            sync.start_recording()
        assert sync.on_diff(history.diffs[k]) is Outcome.APPLIED
    if recording == applied:
        sync.start_recording()
    before = (book_of(sync), sync.book.bid_floor, sync.book.ask_ceiling)
    assert sync.deepen(history.snapshot(deep_at), None) is None
    assert (book_of(sync), sync.book.bid_floor, sync.book.ask_ceiling) == before


def test_a_book_that_is_not_recording_cannot_be_deepened():
    sync = BinanceSync(snapshot_limit=1)
    assert sync.on_snapshot(BookSnapshot(10, ((5, 1),), ((9, 1),))) is Outcome.APPLIED
    assert sync.deepen(BookSnapshot(10, ((5, 1), (4, 1)), ((9, 1), (10, 1))), 5) is None
    sync.start_recording()
    assert sync.deepen(BookSnapshot(10, ((5, 1), (4, 1)), ((9, 1), (10, 1))), 5) is Outcome.APPLIED
    assert sync.book.bids() == [(5, 1), (4, 1)] and sync.book.bid_floor is None  # 2 of 5: the whole side


def test_deepening_widens_the_edges_and_keeps_the_served_levels_and_the_book_object():
    sync = BinanceSync(watch_depth=2, snapshot_limit=3)
    served = sync.book
    assert sync.on_snapshot(BookSnapshot(10, ((9, 1), (8, 1), (7, 1)), ((10, 1), (11, 1), (12, 1)))) is Outcome.APPLIED
    sync.start_recording()
    assert sync.on_diff(BookDiff(11, 11, 0.0, ((5, 3),), ((10, 0),))) is Outcome.APPLIED  # 5: past the edge, dropped
    top = (sync.book.top_bids(2), sync.book.top_asks(2))
    deeper = BookSnapshot(10, ((9, 1), (8, 1), (7, 1), (6, 1), (4, 1)), ((10, 1), (11, 1), (12, 1), (13, 1), (14, 1)))
    assert sync.deepen(deeper, 5) is Outcome.APPLIED
    assert sync.book is served
    assert (sync.book.top_bids(2), sync.book.top_asks(2)) == top
    assert sync.book.bids() == [(9, 1), (8, 1), (7, 1), (6, 1), (5, 3), (4, 1)]  # 5 is known now: the diff recorded
    assert sync.book.asks() == [(11, 1), (12, 1), (13, 1), (14, 1)]
    assert (sync.book.bid_floor, sync.book.ask_ceiling) == (4, 14)


def test_a_deeper_book_that_would_break_is_not_taken():
    sync = BinanceSync(watch_depth=1, snapshot_limit=1)
    assert sync.on_snapshot(BookSnapshot(10, ((5, 1),), ((9, 1),))) is Outcome.APPLIED
    sync.start_recording()
    assert sync.deepen(BookSnapshot(10, ((9, 1), (5, 1)), ((9, 1),)), 2) is Outcome.CROSSED
    assert sync.in_step and book_of(sync) == ([(5, 1)], [(9, 1)])  # untouched: the caller rebuilds it
