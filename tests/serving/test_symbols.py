"""SymbolBooks in process: each symbol's book at each depth asked for, its latest-value rule, states and followers."""

from __future__ import annotations

import math

import gevent
import pytest
from gevent.event import Event
from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook.merge import Level, MergedTop
from orderbook.prices import SCALE, parse_decimal
from orderbook.proto import orderbook_pb2, orderbook_streams_pb2
from orderbook.serving.symbols import (BOOK, SHUTTING_DOWN, STATE, DepthNotServed, SymbolBooks, Unavailable,
                                       UnknownSymbol, symbol_list)
from orderbook.symbol_state import SymbolState

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


def _read_all(stream) -> tuple[list[bytes], BaseException | None]:
    """Every payload of ``stream``, and the :class:`Unavailable` it ended with (None for a normal end)."""
    payloads = []
    try:
        for payload in stream:
            payloads.append(payload)
    except Unavailable as error:
        return payloads, error
    return payloads, None


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


def test_a_client_s_mistakes_have_their_own_exceptions() -> None:
    """The gRPC server answers these, and only these, with NOT_FOUND and INVALID_ARGUMENT."""
    books = SymbolBooks(["ETHBTC"], 10)
    with pytest.raises(UnknownSymbol, match="XRPEUR"):
        books.resolve("XRPEUR", 0)
    with pytest.raises(UnknownSymbol):
        books.set_state(SymbolState("XRPEUR", ("binance",), ()))
    with pytest.raises(UnknownSymbol):
        books.publish_summary("XRPEUR", b"")
    with pytest.raises(DepthNotServed):
        books.resolve("ETHBTC", 11)


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
    btcusdt, ethbtc = books.broadcaster("BTCUSDT", 2).latest, books.broadcaster("ETHBTC", 2).latest
    assert btcusdt is not None and ethbtc is not None
    assert orderbook_pb2.Summary.FromString(btcusdt).bids[0].price == 65000.0
    assert orderbook_pb2.Summary.FromString(ethbtc).bids[0].price == 0.05123
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


def test_close_ends_every_stream_at_every_depth_as_unavailable_and_later_publishes_are_ignored() -> None:
    books = SymbolBooks(["ETHBTC", "BTCUSDT"], 3, recheck_interval=60)
    books.publish("ETHBTC", top([1, 1, 1]))
    readers = [gevent.spawn(_read_all, books.stream(symbol, depth, always))
               for symbol in ("ETHBTC", "BTCUSDT") for depth in (0, 1)]
    gevent.idle()  # until every greenlet waits
    books.close()
    received = [reader.get(timeout=1) for reader in readers]
    assert [len(payloads) for payloads, _ in received] == [1, 1, 0, 0]
    # never a normal end, which a client would take for the end of the book
    assert [str(error) for _, error in received] == [SHUTTING_DOWN] * 4
    books.publish("ETHBTC", top([2, 2, 2]))
    assert books.summary("ETHBTC") is not None and amounts(books.summary("ETHBTC"))[0] == [1, 1, 1]
    with pytest.raises(Unavailable, match="shutting down"):
        next(books.stream("ETHBTC", 2, always))  # asked for after the close: refused
    assert books.unavailable == SHUTTING_DOWN
    books.resume()  # an edge that hears its leader again does not reopen closed books
    assert books.unavailable == SHUTTING_DOWN
    assert books.stats().open_streams == 0


def test_a_stream_whose_client_left_ends_normally_at_the_close() -> None:
    books = SymbolBooks(["ETHBTC"], 3, recheck_interval=60)
    books.publish("ETHBTC", top([1, 1, 1]))
    present = [True]
    reader = gevent.spawn(_read_all, books.stream("ETHBTC", 0, lambda: present[0]))
    gevent.idle()
    present[0] = False
    books.close()
    assert reader.get(timeout=1) == ([books.summary("ETHBTC")], None)  # nobody left to tell


# -- an edge's books: learned from a leader, suspended while it cannot vouch for them ---------------------------------


def test_books_with_no_symbol_yet_refuse_every_stream_as_unavailable() -> None:
    books = SymbolBooks((), 1)
    assert books.unavailable == "no book can be served now: no book yet" and books.symbols == ()
    with pytest.raises(Unavailable):
        books.resolve("", 0)
    books.resume()  # nothing to serve yet: still suspended
    assert books.unavailable == "no book can be served now: no book yet"


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
    # serving is the caller's to resume, once the leader is heard
    assert books.unavailable == "no book can be served now: no book yet"
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
    assert str(kept.get(timeout=1)[1]) == SHUTTING_DOWN


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


def test_a_new_default_symbol_ends_the_streams_that_asked_for_the_default_and_no_other() -> None:
    books = SymbolBooks(["ETHBTC", "BTCUSDT"], 3, recheck_interval=60)
    for symbol in books.symbols:
        books.publish(symbol, top([1, 1, 1]))
    # BookSummary and Book without a symbol, at each depth; Book naming each symbol
    default = [gevent.spawn(_read_all, books.stream("", depth, always)) for depth in (0, 2)]
    named = [gevent.spawn(_read_all, books.stream(symbol, depth, always))
             for symbol in ("ETHBTC", "BTCUSDT") for depth in (0, 2)]
    gevent.idle()
    assert books.reconfigure(["BTCUSDT", "ETHBTC"], 3)
    gevent.idle()
    for reader in default:
        payloads, error = reader.get(timeout=1)
        assert len(payloads) == 1 and isinstance(error, Unavailable)
        assert str(error) == "the default symbol changed from ETHBTC to BTCUSDT"
    assert not any(reader.ready() for reader in named)  # still served at the same depth
    books.publish("ETHBTC", top([2, 1, 1]))
    gevent.idle()
    assert books.stats().sent == 2 + 4 + 2  # the named ETHBTC streams had the new summary
    stream = books.stream("", 0, always)
    assert next(stream) == books.summary("BTCUSDT")  # a new BookSummary stream serves the new default
    assert books.stats().open_streams == 5
    stream.close()
    for reader in named:
        reader.kill()
    assert books.stats().open_streams == 0


def test_a_default_symbol_that_goes_ends_its_default_streams_saying_the_default_changed() -> None:
    books = SymbolBooks(["ETHBTC", "BTCUSDT"], 3, recheck_interval=60)
    books.publish("ETHBTC", top([1, 1, 1]))
    asked_default, named = (gevent.spawn(_read_all, books.stream(symbol, 0, always)) for symbol in ("", "ETHBTC"))
    gevent.idle()
    assert books.reconfigure(["BTCUSDT"], 3)
    assert str(asked_default.get(timeout=1)[1]) == "the default symbol changed from ETHBTC to BTCUSDT"
    assert str(named.get(timeout=1)[1]) == "ETHBTC is no longer served at depth 3"


def test_the_open_streams_gauge_follows_streams_of_retired_books_until_they_end() -> None:
    """A catalogue change retires broadcasters with streams still open: they end a moment later. The gauge
    counted them twice (in the retired sums and then as they ended): "17 with none open" on an edge."""
    books = SymbolBooks(["ETHBTC", "BTCUSDT"], 3, recheck_interval=60)
    for symbol in books.symbols:
        books.publish(symbol, top([1, 1, 1]))
    present = [True]
    readers = [gevent.spawn(_read_all, books.stream(symbol, depth, lambda: present[0]))
               for symbol in ("ETHBTC", "BTCUSDT") for depth in (0, 1, 1, 2)]
    gevent.idle()
    assert books.stats().open_streams == 8
    assert books.reconfigure(["XRPEUR"], 2)  # every book goes, with its streams
    assert books.stats().open_streams == 8  # the streams have not ended yet
    gevent.joinall(readers, timeout=1)
    stats = books.stats()
    assert (stats.open_streams, stats.sent) == (0, 8)
    assert sum(stats.send_latency.counts) == 8  # each retired broadcaster's counters kept once, not twice


# -- the open-streams gauge and the counters as properties, over random histories ------------------------------------


class _Client:
    """One stream read in a greenlet, and the client's side of it: whether it is still there, and its wake-up."""

    def __init__(self, streams: _Streams, symbol: str, depth: int) -> None:
        self.present = True
        self.wake_up = Event()
        self.reader = gevent.spawn(streams.read, streams.books.stream(symbol, depth, lambda: self.present,
                                                                      self.wake_up))

    def leave(self) -> None:
        self.present = False
        self.wake_up.set()  # as the end-of-call callback does


class _Streams:
    """Clients of ``books`` and what they received between them: the oracle for the figures."""

    def __init__(self, books: SymbolBooks) -> None:
        self.books = books
        self.clients: list[_Client] = []
        self.received = 0

    def open(self, symbol: str, depth: int) -> None:
        self.clients.append(_Client(self, symbol, depth))

    def read(self, stream) -> None:
        try:
            for _ in stream:
                self.received += 1
        except Unavailable:
            pass

    def leave(self, index: int) -> None:
        if self.clients:
            self.clients[index % len(self.clients)].leave()

    def open_now(self) -> int:
        return sum(not client.reader.ready() for client in self.clients)


_SYMBOLS = ("A", "B", "C")
_operations = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(("", *_SYMBOLS)), st.integers(0, 3)),
    st.tuples(st.just("leave"), st.integers(0, 50)),
    st.tuples(st.just("publish"), st.sampled_from(_SYMBOLS), st.integers(1, 9)),
    st.tuples(st.just("reconfigure"), st.lists(st.sampled_from(_SYMBOLS), min_size=1, max_size=3, unique=True),
              st.integers(2, 3)),
    st.tuples(st.just("suspend")),
    st.tuples(st.just("resume")),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_operations, max_size=40))
def test_the_gauge_is_the_streams_open_and_the_counters_what_they_received_whatever_happens(
        operations: list[tuple]) -> None:
    books = SymbolBooks(list(_SYMBOLS), 3, recheck_interval=60)
    streams = _Streams(books)
    sent = 0
    for operation in operations:
        kind = operation[0]
        if kind == "open":
            try:
                _, depth = books.resolve(operation[1], operation[2])
            except (Unavailable, KeyError, ValueError):
                continue  # refused before any stream is counted, as the server does
            streams.open(operation[1], depth)
        elif kind == "leave":
            streams.leave(operation[1])
        elif kind == "publish":
            if operation[1] in books.symbols:
                books.publish(operation[1], top([operation[2]] + [1] * (books.depth - 1)))
        elif kind == "reconfigure":
            books.reconfigure(operation[1], operation[2])
        elif kind == "suspend":
            books.suspend("gone")
        else:
            books.resume()
        gevent.idle()  # every stream woken has run and waits again, or has ended
        stats = books.stats()
        assert stats.open_streams == streams.open_now()
        assert stats.sent == streams.received and stats.sent >= sent  # counters only go up
        sent = stats.sent
    for client in streams.clients:
        client.leave()
    gevent.joinall([client.reader for client in streams.clients], timeout=1)
    assert books.stats().open_streams == 0 == streams.open_now()
    assert books.stats().sent == streams.received
