"""The drift audit's comparison, on hand-made books and on real recorded frames."""

from __future__ import annotations

from orderbook.audit import compare
from orderbook.book import BookLevels, VenueBook
from orderbook.exchanges.bitstamp import BitstampVenue
from orderbook.exchanges.messages import PAUSE_EVERY, BookDiff, BookSnapshot
from tests.recordings import data_sets


def book(bids, asks, bid_floor=None, ask_ceiling=None) -> BookLevels:
    result = VenueBook()
    result.load(bids, asks, bid_floor, ask_ceiling)
    return result.levels()


def test_equal_books_do_not_diverge():
    live = book([(10, 1), (9, 2)], [(11, 1), (12, 5)])
    assert compare(live, BookSnapshot(100, ((10, 1), (9, 2)), ((11, 1), (12, 5))), [], None) == []


def test_a_lost_change_is_a_divergence_with_both_amounts():
    live = book([(10, 1), (9, 2)], [(11, 1), (12, 5)])
    found = compare(live, BookSnapshot(100, ((10, 1), (9, 3)), ((11, 1),)), [], None)
    assert [(d.side, d.price, d.ours, d.venue) for d in found] == [("bid", 9, 2, 3), ("ask", 12, 5, 0)]


def test_a_price_a_newer_diff_touched_is_not_a_divergence():
    live = book([(10, 1), (9, 7)], [(11, 1)])
    snapshot = BookSnapshot(100, ((10, 1), (9, 2)), ((11, 1),))
    assert compare(live, snapshot, [BookDiff(101, 101, 0.0, ((9, 7),), ())], None) == []
    # a diff the snapshot already reflects explains nothing
    assert len(compare(live, snapshot, [BookDiff(100, 100, 0.0, ((9, 7),), ())], None)) == 1


def test_only_prices_inside_both_edges_are_compared():
    # The live book came from a 3-level snapshot (its bids stop at 8); the audit asks for 2 levels a side.
    live = book([(10, 1), (9, 2), (8, 4)], [(11, 1), (12, 1), (13, 9)], bid_floor=8)
    audit = BookSnapshot(100, ((10, 1), (9, 2)), ((11, 1), (12, 1)))
    assert compare(live, audit, [], 2) == []  # 8 and 13 lie past the audit snapshot's edges: unknown to it
    assert [(d.side, d.price) for d in compare(live, audit, [], None)] == [("bid", 8), ("ask", 13)]
    # and past the live book's own edge, what the venue shows is not ours to compare
    deeper = BookSnapshot(100, ((10, 1), (9, 2), (8, 4), (7, 5)), ((11, 1), (12, 1), (13, 9)))
    assert compare(live, deeper, [], None) == []


def test_a_recorded_bitstamp_book_matches_its_own_snapshot_and_not_a_tampered_one():
    data_set = next(d for d in data_sets("bitstamp") if len(d.frames) >= 20)
    protocol = BitstampVenue("wss://ws.bitstamp.net", "https://www.bitstamp.net")
    snapshot = protocol.parse_snapshot(data_set.snapshot_body)
    live = book(snapshot.bids, snapshot.asks)
    assert compare(live, snapshot, [], None) == []
    price, amount = snapshot.bids[3]
    tampered = BookSnapshot(snapshot.last_id, (*snapshot.bids[:3], (price, amount + 1), *snapshot.bids[4:]),
                            snapshot.asks)
    assert [(d.price, d.ours, d.venue) for d in compare(live, tampered, [], None)] == [(price, amount, amount + 1)]


def test_a_deep_book_compared_with_pauses_finds_the_same_levels_and_pauses_before_each_side_and_between_slices():
    """The feed compares a book's copy on the hub, letting the readers run before each side (the copy was taken
    just before) and every few hundred prices."""
    bids = [(10_000 - i, 1 + i % 3) for i in range(1_000)]
    asks = [(10_001 + i, 2 + i % 5) for i in range(1_000)]
    live = book(bids, asks)
    venue_bids = [(price, amount + 1) if price % 97 == 0 else (price, amount) for price, amount in bids]
    snapshot = BookSnapshot(100, tuple(venue_bids), tuple(asks[:-1]))
    pauses = []
    found = compare(live, snapshot, [BookDiff(101, 101, 0.0, ((9_991, 5),), ())], None, lambda: pauses.append(1))
    assert found == compare(live, snapshot, [BookDiff(101, 101, 0.0, ((9_991, 5),), ())], None)
    assert [(d.side, d.price) for d in found] == [
        *(("bid", price) for price, _ in bids if price % 97 == 0 and price != 9_991), ("ask", asks[-1][0])]
    assert len(pauses) == 2 * (1 + (1_000 - 1) // PAUSE_EVERY)
