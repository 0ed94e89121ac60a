"""SymbolBooks in process: each symbol's book at each depth asked for, its latest-value rule, states and followers."""

from __future__ import annotations

import math

import gevent
import pytest

from orderbook.merge import Level, MergedTop
from orderbook.prices import SCALE, parse_decimal
from orderbook.proto import orderbook_pb2, orderbook_streams_pb2
from orderbook.serving.symbols import BOOK, STATE, SymbolBooks, SymbolState, Unavailable, symbol_list

TICK = parse_decimal("0.00001")


def top(amounts: list[int], base: str = "0.05123") -> MergedTop:
    """Bids down from ``base``, asks up from one tick above; level i of each side has amount ``amounts[i]``."""
    price = parse_decimal(base)
    bids = tuple(Level("binance" if i % 2 else "bitstamp", price - i * TICK, amount * SCALE)
                 for i, amount in enumerate(amounts))
    asks = tuple(Level("bitstamp" if i % 2 else "binance", price + (i + 1) * TICK, amount * SCALE)
                 for i, amount in enumerate(amounts))
    return MergedTop(TICK, bids, asks)


def amounts(payload: bytes | None) -> tuple[list[float], list[float], float]:
    """What a client reads from a summary: each side's amounts, and the spread."""
    assert payload is not None
    summary = orderbook_pb2.Summary.FromString(payload)
    return [level.amount for level in summary.bids], [level.amount for level in summary.asks], summary.spread


def always() -> bool:
    return True


def test_an_empty_symbol_is_the_default_and_depth_0_the_full_depth() -> None:
    books = SymbolBooks(["ETHBTC", "BTCUSDT"], 10)
    assert (books.default, books.depth, books.symbols) == ("ETHBTC", 10, ("ETHBTC", "BTCUSDT"))
    assert books.resolve("", 0) == ("ETHBTC", 10)
    assert books.resolve("BTCUSDT", 4) == ("BTCUSDT", 4)
    assert books.broadcaster("", 0) is books.broadcaster("ETHBTC", 10)  # what BookSummary streams
    assert books.broadcaster("BTCUSDT", 0) is not books.broadcaster("ETHBTC", 0)


def test_an_unknown_symbol_and_a_depth_beyond_the_configured_one_are_refused() -> None:
    books = SymbolBooks(["ETHBTC"], 10)
    with pytest.raises(KeyError, match="XRPEUR"):
        books.broadcaster("XRPEUR", 0)
    with pytest.raises(KeyError):
        books.broadcaster("ethbtc", 0)  # symbols are as configured: upper case
    with pytest.raises(ValueError, match="depth 11 is more than the 10 levels a side served"):
        books.broadcaster("ETHBTC", 11)


@pytest.mark.parametrize(("symbols", "depth", "complaint"),
                         [(["A", "B", "A"], 10, "listed twice"), (["A"], 0, "depth")])
def test_a_bad_configuration_is_refused(symbols: list[str], depth: int, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        SymbolBooks(symbols, depth)


def test_the_full_depth_is_published_as_encoded_and_a_shallower_one_is_cut_to_its_levels() -> None:
    books = SymbolBooks(["ETHBTC"], 5)
    books.publish("ETHBTC", top([1, 2, 3, 4, 5]))
    assert amounts(books.broadcaster("", 0).latest) == ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], 1e-05)
    # made on first use, holding the current book cut to its depth: the same spread, the best levels
    assert amounts(books.broadcaster("ETHBTC", 2).latest) == ([1, 2], [1, 2], 1e-05)
    books.publish("ETHBTC", top([6, 2, 3, 4, 5]))
    assert amounts(books.broadcaster("ETHBTC", 2).latest) == ([6, 2], [6, 2], 1e-05)
    assert amounts(books.broadcaster("ETHBTC", 1).latest) == ([6], [6], 1e-05)


def test_a_one_sided_book_keeps_its_missing_spread_at_every_depth() -> None:
    books = SymbolBooks(["ETHBTC"], 3)
    full = top([1, 2, 3])
    books.publish("ETHBTC", MergedTop(None, full.bids, ()))
    bids, asks, spread = amounts(books.broadcaster("ETHBTC", 2).latest)
    assert (bids, asks, math.isnan(spread)) == ([1, 2], [], True)


def test_a_change_below_a_depth_publishes_nothing_there_and_wakes_none_of_its_streams() -> None:
    books = SymbolBooks(["ETHBTC"], 5, recheck_interval=60)
    books.publish("ETHBTC", top([1, 1, 1, 1, 1]))
    shallow, full = books.broadcaster("ETHBTC", 2), books.broadcaster("ETHBTC", 0)
    woken: list[int] = []

    def is_active() -> bool:
        woken.append(1)  # a stream checks its client each time it wakes
        return True

    stream = books.stream("ETHBTC", 2, is_active)
    assert amounts(next(stream)) == ([1, 1], [1, 1], 1e-05)
    reader = gevent.spawn(next, stream)
    gevent.idle()  # until every greenlet waits
    checks = len(woken)
    books.publish("ETHBTC", top([1, 1, 7, 7, 7]))  # below the top 2
    books.publish("ETHBTC", top([1, 1, 8, 8, 8]))
    gevent.idle()  # until every greenlet waits
    assert (full.version, shallow.version) == (3, 1) and not reader.ready()
    assert len(woken) == checks  # not even woken to look
    books.publish("ETHBTC", top([1, 9, 8, 8, 8]))  # within the top 2
    assert amounts(reader.get(timeout=1)) == ([1, 9], [1, 9], 1e-05)
    assert shallow.version == 2


def test_a_slow_reader_of_a_shallower_depth_skips_to_the_latest() -> None:
    books = SymbolBooks(["ETHBTC"], 3)
    books.publish("ETHBTC", top([1, 1, 1]))
    stream = books.stream("ETHBTC", 1, always)
    assert amounts(next(stream))[0] == [1]
    for amount in (2, 3, 4):
        books.publish("ETHBTC", top([amount, 1, 1]))
    assert amounts(next(stream))[0] == [4]
    assert books.stats().skipped == 2


def test_symbols_are_independent() -> None:
    books = SymbolBooks(["ETHBTC", "BTCUSDT"], 3)
    books.publish("BTCUSDT", top([5, 5, 5], base="65000"))
    assert books.broadcaster("ETHBTC", 0).latest is None
    assert books.broadcaster("ETHBTC", 2).latest is None  # nothing to cut yet
    books.publish("ETHBTC", top([1, 1, 1]))
    assert orderbook_pb2.Summary.FromString(books.broadcaster("BTCUSDT", 2).latest).bids[0].price == 65000.0
    assert orderbook_pb2.Summary.FromString(books.broadcaster("ETHBTC", 2).latest).bids[0].price == 0.05123
    assert books.published_total == 2
    with pytest.raises(KeyError):
        books.publish("XRPEUR", top([1]))


def test_a_shallower_broadcaster_goes_with_its_last_stream_and_its_figures_stay() -> None:
    books = SymbolBooks(["ETHBTC"], 3)
    books.publish("ETHBTC", top([1, 1, 1]))
    first, second = books.stream("ETHBTC", 2, always), books.stream("ETHBTC", 2, always)
    next(first), next(second)
    shared = books.broadcaster("ETHBTC", 2)
    assert shared.open_streams == 2
    first.close()
    assert books.broadcaster("ETHBTC", 2) is shared  # one stream left on it
    second.close()
    assert books.broadcaster("ETHBTC", 2) is not shared  # gone: a new one was made for this call
    stats = books.stats()
    assert (stats.open_streams, stats.sent, sum(stats.send_latency.counts)) == (0, 2, 2)


def test_many_clients_at_many_depths_leave_no_broadcaster_behind() -> None:
    books = SymbolBooks(["ETHBTC", "BTCUSDT"], 10)
    books.publish("ETHBTC", top(list(range(1, 11))))
    books.publish("BTCUSDT", top(list(range(1, 11))))
    for _ in range(3):
        streams = [books.stream(symbol, depth, always) for symbol in books.symbols for depth in range(1, 10)]
        assert [len(amounts(next(stream))[0]) for stream in streams] == [*range(1, 10)] * 2
        for stream in streams:
            stream.close()
    fresh = [books.broadcaster(symbol, depth) for symbol in books.symbols for depth in range(1, 10)]
    assert all(broadcaster.version == 1 and broadcaster.sent_total == 0 for broadcaster in fresh)
    assert books.stats().sent == 3 * 18


def test_states_are_kept_in_configured_order_and_checked() -> None:
    books = SymbolBooks(["ETHBTC", "BTCUSDT"], 10)
    assert books.states() == [SymbolState("ETHBTC", (), ()), SymbolState("BTCUSDT", (), ())]
    books.set_state(SymbolState("BTCUSDT", ("binance", "bitstamp"), ("binance",)))
    books.set_state(SymbolState("ETHBTC", ("binance",), ()))
    assert books.states() == [SymbolState("ETHBTC", ("binance",), ()),
                              SymbolState("BTCUSDT", ("binance", "bitstamp"), ("binance",))]
    with pytest.raises(KeyError):
        books.set_state(SymbolState("XRPEUR", ("binance",), ()))
    with pytest.raises(ValueError, match="in step on"):
        books.set_state(SymbolState("ETHBTC", ("binance",), ("bitstamp",)))
    message = orderbook_streams_pb2.SymbolList.FromString(symbol_list(books.states()))
    assert [(s.symbol, list(s.exchanges), list(s.exchanges_in_step)) for s in message.symbols] == [
        ("ETHBTC", ["binance"], []), ("BTCUSDT", ["binance", "bitstamp"], ["binance"])]
    state = SymbolState("BTCUSDT", ("binance", "bitstamp"), ("bitstamp",))
    assert SymbolState.from_bytes(state.to_message().SerializeToString()) == state
    with pytest.raises(ValueError, match="not an orderbook.SymbolState"):
        SymbolState.from_bytes(b"\xff")


def test_a_follower_gets_everything_first_then_each_change_once_however_often_it_came() -> None:
    books = SymbolBooks(["ETHBTC", "BTCUSDT", "ETHUSDT"], 3, recheck_interval=60)
    books.publish("BTCUSDT", top([1, 1, 1]))
    changes = books.follow(always)
    assert next(changes) == [(STATE, "ETHBTC"), (BOOK, "BTCUSDT"), (STATE, "BTCUSDT"), (STATE, "ETHUSDT")]
    waiting = gevent.spawn(next, changes)
    gevent.idle()  # until every greenlet waits
    assert not waiting.ready()
    books.publish("ETHUSDT", top([1, 1, 1]))
    assert waiting.get(timeout=1) == [(BOOK, "ETHUSDT")]
    for amount in range(2, 50):  # the follower is busy meanwhile: what waits for it stays one entry a symbol
        books.publish("ETHBTC", top([amount, 1, 1]))
        books.publish("ETHUSDT", top([amount, 1, 1]))
    books.set_state(SymbolState("ETHBTC", ("binance",), ("binance",)))
    books.set_state(SymbolState("ETHBTC", ("binance",), ()))
    books.set_state(SymbolState("ETHBTC", ("binance",), ()))
    assert next(changes) == [(BOOK, "ETHBTC"), (BOOK, "ETHUSDT"), (STATE, "ETHBTC")]
    assert amounts(books.broadcaster("ETHBTC", 0).latest)[0] == [49, 1, 1]  # what the follower reads now
    ended = gevent.spawn(list, changes)
    gevent.idle()  # until every greenlet waits
    books.close()
    assert ended.get(timeout=1) == []


def test_a_follower_whose_reader_left_stops_at_its_next_check() -> None:
    books = SymbolBooks(["ETHBTC"], 3, recheck_interval=0.05)
    present = [True]
    changes = books.follow(lambda: present[0])
    assert next(changes) == [(STATE, "ETHBTC")]
    follower = gevent.spawn(list, changes)
    present[0] = False
    assert follower.get(timeout=1) == []


def test_close_ends_every_stream_at_every_depth_and_later_publishes_are_ignored() -> None:
    books = SymbolBooks(["ETHBTC", "BTCUSDT"], 3, recheck_interval=60)
    books.publish("ETHBTC", top([1, 1, 1]))
    readers = [gevent.spawn(list, books.stream(symbol, depth, always))
               for symbol in ("ETHBTC", "BTCUSDT") for depth in (0, 1)]
    gevent.idle()  # until every greenlet waits
    books.close()
    received = [reader.get(timeout=1) for reader in readers]
    assert [len(payloads) for payloads in received] == [1, 1, 0, 0]
    books.publish("ETHBTC", top([2, 2, 2]))
    assert amounts(books.broadcaster("ETHBTC", 0).latest)[0] == [1, 1, 1]
    assert list(books.stream("ETHBTC", 2, always)) == []  # made after the close: closed at once
    assert books.stats().open_streams == 0


# -- an edge's books: learned from a leader, suspended while it cannot vouch for them ---------------------------------


def _read_all(stream) -> tuple[list[bytes], BaseException | None]:  # type: ignore[no-untyped-def]
    payloads = []
    try:
        for payload in stream:
            payloads.append(payload)
    except Unavailable as error:
        return payloads, error
    return payloads, None


def test_books_with_no_symbol_yet_refuse_every_stream_as_unavailable() -> None:
    books = SymbolBooks((), 1)
    assert books.unavailable == "no book yet" and books.symbols == ()
    with pytest.raises(Unavailable):
        books.resolve("", 0)
    books.resume()  # nothing to serve yet: still suspended
    assert books.unavailable == "no book yet"


def test_suspend_ends_every_stream_with_unavailable_refuses_new_ones_and_resume_serves_again() -> None:
    books = SymbolBooks(["ETHBTC", "BTCUSDT"], 3, recheck_interval=60)
    books.publish("ETHBTC", top([1, 1, 1]))
    readers = [gevent.spawn(_read_all, books.stream(symbol, depth, always))
               for symbol in ("ETHBTC", "BTCUSDT") for depth in (0, 1)]
    gevent.idle()
    books.suspend("the leader has not been heard for 5 s")
    results = [reader.get(timeout=1) for reader in readers]
    assert [len(payloads) for payloads, _ in results] == [1, 1, 0, 0]
    assert all(isinstance(error, Unavailable) and "not been heard" in str(error) for _, error in results)
    with pytest.raises(Unavailable, match="not been heard"):
        books.resolve("ETHBTC", 0)
    books.publish("ETHBTC", top([2, 2, 2]))  # still kept while suspended: the latest is there on resume
    books.resume()
    assert books.unavailable is None
    stream = books.stream("ETHBTC", 0, always)
    assert amounts(next(stream))[0] == [2, 2, 2]
    assert books.stats().open_streams == 1


def test_a_stream_whose_client_left_ends_normally_even_while_suspended() -> None:
    books = SymbolBooks(["ETHBTC"], 3, recheck_interval=60)
    books.publish("ETHBTC", top([1, 1, 1]))
    present = [True]
    reader = gevent.spawn(_read_all, books.stream("ETHBTC", 0, lambda: present[0]))
    gevent.idle()
    present[0] = False
    books.suspend("gone")
    assert reader.get(timeout=1) == ([books.summary("ETHBTC")], None)


def test_reconfigure_adds_symbols_and_ends_only_the_streams_of_the_ones_that_went() -> None:
    books = SymbolBooks((), 1)
    assert books.reconfigure(["ETHBTC", "BTCUSDT"], 3)
    assert (books.symbols, books.default, books.depth) == (("ETHBTC", "BTCUSDT"), "ETHBTC", 3)
    assert books.unavailable == "no book yet"  # serving is the caller's to resume, once the leader is heard
    books.resume()
    assert not books.reconfigure(["ETHBTC", "BTCUSDT"], 3)  # the same catalogue: nothing happens
    books.publish("ETHBTC", top([1, 1, 1]))
    books.publish("BTCUSDT", top([1, 1, 1]))
    kept, dropped = (gevent.spawn(_read_all, books.stream(symbol, 0, always)) for symbol in ("ETHBTC", "BTCUSDT"))
    gevent.idle()
    assert books.reconfigure(["XRPEUR", "ETHBTC"], 3)
    assert (books.symbols, books.default) == (("XRPEUR", "ETHBTC"), "XRPEUR")
    payloads, error = dropped.get(timeout=1)
    assert len(payloads) == 1 and isinstance(error, Unavailable) and "BTCUSDT is no longer served" in str(error)
    assert not kept.ready()
    assert books.summary("XRPEUR") is None and books.summary("ETHBTC") is not None
    with pytest.raises(KeyError):
        books.resolve("BTCUSDT", 0)
    books.close()
    assert kept.get(timeout=1)[1] is None


def test_a_new_depth_ends_every_stream_and_starts_every_book_afresh() -> None:
    books = SymbolBooks(["ETHBTC"], 3, recheck_interval=60)
    books.publish("ETHBTC", top([1, 1, 1]))
    reader = gevent.spawn(_read_all, books.stream("ETHBTC", 2, always))
    gevent.idle()
    assert books.reconfigure(["ETHBTC"], 5)
    payloads, error = reader.get(timeout=1)
    assert len(payloads) == 1 and isinstance(error, Unavailable)
    assert books.summary("ETHBTC") is None and books.depth == 5
    with pytest.raises(ValueError, match="at least one symbol"):
        books.reconfigure([], 5)
