"""ServedSymbols in process: each symbol's book at each depth asked for, its latest-value rule, states and followers."""

from __future__ import annotations

from typing import Any

import math

import gevent
import pytest
from gevent.event import Event
from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook.merge import Level, MergedTop
from orderbook.prices import SCALE, parse_decimal
from orderbook.proto import orderbook_pb2, orderbook_streams_pb2
from orderbook.serving.symbols import (BOOK, SHUTTING_DOWN, STATE, DepthNotServed, ServedSymbols, Unavailable,
                                       UnknownSymbol, symbol_list)
from orderbook.symbol_state import SymbolState
from tests.support.streams import read_all

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
    served = ServedSymbols(["ETHBTC", "BTCUSDT"], 10)
    assert (served.default, served.depth, served.symbols) == ("ETHBTC", 10, ("ETHBTC", "BTCUSDT"))
    assert served.resolve("", 0) == ("ETHBTC", 10)
    assert served.resolve("BTCUSDT", 4) == ("BTCUSDT", 4)
    assert served.broadcaster("", 0) is served.broadcaster("ETHBTC", 10)  # what BookSummary streams
    assert served.broadcaster("BTCUSDT", 0) is not served.broadcaster("ETHBTC", 0)


def test_an_unknown_symbol_and_a_depth_beyond_the_configured_one_are_refused() -> None:
    served = ServedSymbols(["ETHBTC"], 10)
    with pytest.raises(KeyError, match="XRPEUR"):
        served.broadcaster("XRPEUR", 0)
    with pytest.raises(KeyError):
        served.broadcaster("ethbtc", 0)  # symbols are as configured: upper case
    with pytest.raises(ValueError, match="depth 11 is more than the 10 levels a side served"):
        served.broadcaster("ETHBTC", 11)


@pytest.mark.parametrize(("symbols", "depth", "complaint"),
                         [(["A", "B", "A"], 10, "listed twice"), (["A"], 0, "depth")])
def test_a_bad_configuration_is_refused(symbols: list[str], depth: int, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        ServedSymbols(symbols, depth)


def test_a_client_s_mistakes_have_their_own_exceptions() -> None:
    """The gRPC server answers these, and only these, with NOT_FOUND and INVALID_ARGUMENT."""
    served = ServedSymbols(["ETHBTC"], 10)
    with pytest.raises(UnknownSymbol, match="XRPEUR"):
        served.resolve("XRPEUR", 0)
    with pytest.raises(UnknownSymbol):
        served.set_state(SymbolState("XRPEUR", ("binance",), ()))
    with pytest.raises(UnknownSymbol):
        served.publish_summary("XRPEUR", b"")
    with pytest.raises(DepthNotServed):
        served.resolve("ETHBTC", 11)


def test_the_full_depth_is_published_as_encoded_and_a_shallower_one_is_cut_to_its_levels() -> None:
    served = ServedSymbols(["ETHBTC"], 5)
    served.publish("ETHBTC", top([1, 2, 3, 4, 5]))
    assert amounts(served.broadcaster("", 0).latest) == ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], 1e-05)
    # made on first use, holding the current book cut to its depth: the same spread, the best levels
    assert amounts(served.broadcaster("ETHBTC", 2).latest) == ([1, 2], [1, 2], 1e-05)
    served.publish("ETHBTC", top([6, 2, 3, 4, 5]))
    assert amounts(served.broadcaster("ETHBTC", 2).latest) == ([6, 2], [6, 2], 1e-05)
    assert amounts(served.broadcaster("ETHBTC", 1).latest) == ([6], [6], 1e-05)


def test_a_one_sided_book_keeps_its_missing_spread_at_every_depth() -> None:
    served = ServedSymbols(["ETHBTC"], 3)
    full = top([1, 2, 3])
    served.publish("ETHBTC", MergedTop(None, full.bids, ()))
    bids, asks, spread = amounts(served.broadcaster("ETHBTC", 2).latest)
    assert (bids, asks, math.isnan(spread)) == ([1, 2], [], True)


def test_a_change_below_a_depth_publishes_nothing_there_and_wakes_none_of_its_streams() -> None:
    served = ServedSymbols(["ETHBTC"], 5, recheck_interval=60)
    served.publish("ETHBTC", top([1, 1, 1, 1, 1]))
    shallow, full = served.broadcaster("ETHBTC", 2), served.broadcaster("ETHBTC", 0)
    woken: list[int] = []

    def is_active() -> bool:
        woken.append(1)  # a stream checks its client each time it wakes
        return True

    stream = served.stream("ETHBTC", 2, is_active)
    assert amounts(next(stream)) == ([1, 1], [1, 1], 1e-05)
    reader = gevent.spawn(next, stream)
    gevent.idle()  # until every greenlet waits
    checks = len(woken)
    served.publish("ETHBTC", top([1, 1, 7, 7, 7]))  # below the top 2
    served.publish("ETHBTC", top([1, 1, 8, 8, 8]))
    gevent.idle()  # until every greenlet waits
    assert (full.version, shallow.version) == (3, 1) and not reader.ready()
    assert len(woken) == checks  # not even woken to look
    served.publish("ETHBTC", top([1, 9, 8, 8, 8]))  # within the top 2
    assert amounts(reader.get(timeout=1)) == ([1, 9], [1, 9], 1e-05)
    assert shallow.version == 2


def test_a_slow_reader_of_a_shallower_depth_skips_to_the_latest() -> None:
    served = ServedSymbols(["ETHBTC"], 3)
    served.publish("ETHBTC", top([1, 1, 1]))
    stream = served.stream("ETHBTC", 1, always)
    assert amounts(next(stream))[0] == [1]
    for amount in (2, 3, 4):
        served.publish("ETHBTC", top([amount, 1, 1]))
    assert amounts(next(stream))[0] == [4]
    assert served.stats().skipped == 2


def test_symbols_are_independent() -> None:
    served = ServedSymbols(["ETHBTC", "BTCUSDT"], 3)
    served.publish("BTCUSDT", top([5, 5, 5], base="65000"))
    assert served.broadcaster("ETHBTC", 0).latest is None
    assert served.broadcaster("ETHBTC", 2).latest is None  # nothing to cut yet
    served.publish("ETHBTC", top([1, 1, 1]))
    btcusdt, ethbtc = served.broadcaster("BTCUSDT", 2).latest, served.broadcaster("ETHBTC", 2).latest
    assert btcusdt is not None and ethbtc is not None
    assert orderbook_pb2.Summary.FromString(btcusdt).bids[0].price == 65000.0
    assert orderbook_pb2.Summary.FromString(ethbtc).bids[0].price == 0.05123
    assert served.published_total == 2
    with pytest.raises(KeyError):
        served.publish("XRPEUR", top([1]))


def test_a_shallower_broadcaster_goes_with_its_last_stream_and_its_figures_stay() -> None:
    served = ServedSymbols(["ETHBTC"], 3)
    served.publish("ETHBTC", top([1, 1, 1]))
    first, second = served.stream("ETHBTC", 2, always), served.stream("ETHBTC", 2, always)
    next(first), next(second)
    shared = served.broadcaster("ETHBTC", 2)
    assert shared.open_streams == 2
    first.close()
    assert served.broadcaster("ETHBTC", 2) is shared  # one stream left on it
    second.close()
    assert served.broadcaster("ETHBTC", 2) is not shared  # gone: a new one was made for this call
    stats = served.stats()
    assert (stats.open_streams, stats.sent, sum(stats.send_latency.counts)) == (0, 2, 2)


def test_many_clients_at_many_depths_leave_no_broadcaster_behind() -> None:
    served = ServedSymbols(["ETHBTC", "BTCUSDT"], 10)
    served.publish("ETHBTC", top(list(range(1, 11))))
    served.publish("BTCUSDT", top(list(range(1, 11))))
    for _ in range(3):
        streams = [served.stream(symbol, depth, always) for symbol in served.symbols for depth in range(1, 10)]
        assert [len(amounts(next(stream))[0]) for stream in streams] == [*range(1, 10)] * 2
        for stream in streams:
            stream.close()
    fresh = [served.broadcaster(symbol, depth) for symbol in served.symbols for depth in range(1, 10)]
    assert all(broadcaster.version == 1 and broadcaster.sent_total == 0 for broadcaster in fresh)
    assert served.stats().sent == 3 * 18


def test_states_are_kept_in_configured_order_and_checked() -> None:
    served = ServedSymbols(["ETHBTC", "BTCUSDT"], 10)
    assert served.states() == [SymbolState("ETHBTC", (), ()), SymbolState("BTCUSDT", (), ())]
    served.set_state(SymbolState("BTCUSDT", ("binance", "bitstamp"), ("binance",)))
    served.set_state(SymbolState("ETHBTC", ("binance",), ()))
    assert served.states() == [SymbolState("ETHBTC", ("binance",), ()),
                              SymbolState("BTCUSDT", ("binance", "bitstamp"), ("binance",))]
    with pytest.raises(KeyError):
        served.set_state(SymbolState("XRPEUR", ("binance",), ()))
    with pytest.raises(ValueError, match="in step on"):
        served.set_state(SymbolState("ETHBTC", ("binance",), ("bitstamp",)))
    message = orderbook_streams_pb2.SymbolList.FromString(symbol_list(served.states()))
    assert [(s.symbol, list(s.exchanges), list(s.exchanges_in_step)) for s in message.symbols] == [
        ("ETHBTC", ["binance"], []), ("BTCUSDT", ["binance", "bitstamp"], ["binance"])]
    state = SymbolState("BTCUSDT", ("binance", "bitstamp"), ("bitstamp",))
    assert SymbolState.from_bytes(state.to_message().SerializeToString()) == state
    with pytest.raises(ValueError, match="not an orderbook.SymbolState"):
        SymbolState.from_bytes(b"\xff")


def test_a_follower_gets_everything_first_then_each_change_once_however_often_it_came() -> None:
    served = ServedSymbols(["ETHBTC", "BTCUSDT", "ETHUSDT"], 3, recheck_interval=60)
    served.publish("BTCUSDT", top([1, 1, 1]))
    changes = served.follow(always)
    assert next(changes) == [(STATE, "ETHBTC"), (BOOK, "BTCUSDT"), (STATE, "BTCUSDT"), (STATE, "ETHUSDT")]
    waiting = gevent.spawn(next, changes)
    gevent.idle()  # until every greenlet waits
    assert not waiting.ready()
    served.publish("ETHUSDT", top([1, 1, 1]))
    assert waiting.get(timeout=1) == [(BOOK, "ETHUSDT")]
    for amount in range(2, 50):  # the follower is busy meanwhile: what waits for it stays one entry a symbol
        served.publish("ETHBTC", top([amount, 1, 1]))
        served.publish("ETHUSDT", top([amount, 1, 1]))
    served.set_state(SymbolState("ETHBTC", ("binance",), ("binance",)))
    served.set_state(SymbolState("ETHBTC", ("binance",), ()))
    served.set_state(SymbolState("ETHBTC", ("binance",), ()))
    assert next(changes) == [(BOOK, "ETHBTC"), (BOOK, "ETHUSDT"), (STATE, "ETHBTC")]
    assert amounts(served.broadcaster("ETHBTC", 0).latest)[0] == [49, 1, 1]  # what the follower reads now
    ended = gevent.spawn(list, changes)
    gevent.idle()  # until every greenlet waits
    served.close()
    assert ended.get(timeout=1) == []


def test_a_follower_runs_before_the_local_streams_of_the_same_summary() -> None:
    """The relay's publisher (a follower) is woken first: the summary leaves for Redis before this process's own
    streams send it, so the hop to an edge does not wait for the local sends (issue 21, the hop)."""
    served = ServedSymbols(["ETHBTC"], 3, recheck_interval=60)
    served.publish("ETHBTC", top([1, 1, 1]))
    order: list[str] = []
    streams = [served.stream("ETHBTC", 3, always) for _ in range(3)]
    changes = served.follow(always)
    next(changes)
    for stream in streams:
        next(stream)

    def read(name: str, source: Any) -> None:
        next(source)
        order.append(name)

    readers = [gevent.spawn(read, f"stream {index}", stream) for index, stream in enumerate(streams)]
    readers.append(gevent.spawn(read, "follower", changes))
    gevent.idle()  # until every greenlet waits
    served.publish("ETHBTC", top([2, 1, 1]))
    gevent.joinall(readers, timeout=1)
    assert order == ["follower", "stream 0", "stream 1", "stream 2"]
    served.close()


def test_a_follower_whose_reader_left_stops_at_its_next_check() -> None:
    served = ServedSymbols(["ETHBTC"], 3, recheck_interval=0.05)
    present = [True]
    changes = served.follow(lambda: present[0])
    assert next(changes) == [(STATE, "ETHBTC")]
    follower = gevent.spawn(list, changes)
    present[0] = False
    assert follower.get(timeout=1) == []


def test_close_ends_every_stream_at_every_depth_as_unavailable_and_later_publishes_are_ignored() -> None:
    served = ServedSymbols(["ETHBTC", "BTCUSDT"], 3, recheck_interval=60)
    served.publish("ETHBTC", top([1, 1, 1]))
    readers = [gevent.spawn(read_all, served.stream(symbol, depth, always))
               for symbol in ("ETHBTC", "BTCUSDT") for depth in (0, 1)]
    gevent.idle()  # until every greenlet waits
    served.close()
    received = [reader.get(timeout=1) for reader in readers]
    assert [len(payloads) for payloads, _ in received] == [1, 1, 0, 0]
    # never a normal end, which a client would take for the end of the book
    assert [str(error) for _, error in received] == [SHUTTING_DOWN] * 4
    served.publish("ETHBTC", top([2, 2, 2]))
    assert served.summary("ETHBTC") is not None and amounts(served.summary("ETHBTC"))[0] == [1, 1, 1]
    with pytest.raises(Unavailable, match="shutting down"):
        next(served.stream("ETHBTC", 2, always))  # asked for after the close: refused
    assert served.unavailable == SHUTTING_DOWN
    served.resume()  # an edge that hears its leader again does not reopen closed books
    assert served.unavailable == SHUTTING_DOWN
    assert served.stats().open_streams == 0


def test_a_stream_whose_client_left_ends_normally_at_the_close() -> None:
    served = ServedSymbols(["ETHBTC"], 3, recheck_interval=60)
    served.publish("ETHBTC", top([1, 1, 1]))
    present = [True]
    reader = gevent.spawn(read_all, served.stream("ETHBTC", 0, lambda: present[0]))
    gevent.idle()
    present[0] = False
    served.close()
    assert reader.get(timeout=1) == ([served.summary("ETHBTC")], None)  # nobody left to tell


# -- an edge's books: learned from a leader, suspended while it cannot vouch for them ---------------------------------


def test_books_with_no_symbol_yet_refuse_every_stream_as_unavailable() -> None:
    served = ServedSymbols((), 1)
    assert served.unavailable == "no book can be served now: no book yet" and served.symbols == ()
    with pytest.raises(Unavailable):
        served.resolve("", 0)
    served.resume()  # nothing to serve yet: still suspended
    assert served.unavailable == "no book can be served now: no book yet"


def test_suspend_ends_every_stream_with_unavailable_refuses_new_ones_and_resume_serves_again() -> None:
    served = ServedSymbols(["ETHBTC", "BTCUSDT"], 3, recheck_interval=60)
    served.publish("ETHBTC", top([1, 1, 1]))
    readers = [gevent.spawn(read_all, served.stream(symbol, depth, always))
               for symbol in ("ETHBTC", "BTCUSDT") for depth in (0, 1)]
    gevent.idle()
    served.suspend("the leader has not been heard for 5 s")
    results = [reader.get(timeout=1) for reader in readers]
    assert [len(payloads) for payloads, _ in results] == [1, 1, 0, 0]
    assert all(isinstance(error, Unavailable) and "not been heard" in str(error) for _, error in results)
    with pytest.raises(Unavailable, match="not been heard"):
        served.resolve("ETHBTC", 0)
    served.publish("ETHBTC", top([2, 2, 2]))  # still kept while suspended: the latest is there on resume
    served.resume()
    assert served.unavailable is None
    stream = served.stream("ETHBTC", 0, always)
    assert amounts(next(stream))[0] == [2, 2, 2]
    assert served.stats().open_streams == 1


def test_a_stream_whose_client_left_ends_normally_even_while_suspended() -> None:
    served = ServedSymbols(["ETHBTC"], 3, recheck_interval=60)
    served.publish("ETHBTC", top([1, 1, 1]))
    present = [True]
    reader = gevent.spawn(read_all, served.stream("ETHBTC", 0, lambda: present[0]))
    gevent.idle()
    present[0] = False
    served.suspend("gone")
    assert reader.get(timeout=1) == ([served.summary("ETHBTC")], None)


def test_reconfigure_adds_symbols_and_ends_only_the_streams_of_the_ones_that_went() -> None:
    served = ServedSymbols((), 1)
    assert served.reconfigure(["ETHBTC", "BTCUSDT"], 3)
    assert (served.symbols, served.default, served.depth) == (("ETHBTC", "BTCUSDT"), "ETHBTC", 3)
    # serving is the caller's to resume, once the leader is heard
    assert served.unavailable == "no book can be served now: no book yet"
    served.resume()
    assert not served.reconfigure(["ETHBTC", "BTCUSDT"], 3)  # the same catalogue: nothing happens
    served.publish("ETHBTC", top([1, 1, 1]))
    served.publish("BTCUSDT", top([1, 1, 1]))
    kept, dropped = (gevent.spawn(read_all, served.stream(symbol, 0, always)) for symbol in ("ETHBTC", "BTCUSDT"))
    gevent.idle()
    assert served.reconfigure(["XRPEUR", "ETHBTC"], 3)
    assert (served.symbols, served.default) == (("XRPEUR", "ETHBTC"), "XRPEUR")
    payloads, error = dropped.get(timeout=1)
    assert len(payloads) == 1 and isinstance(error, Unavailable) and "BTCUSDT is no longer served" in str(error)
    assert not kept.ready()
    assert served.summary("XRPEUR") is None and served.summary("ETHBTC") is not None
    with pytest.raises(KeyError):
        served.resolve("BTCUSDT", 0)
    served.close()
    assert str(kept.get(timeout=1)[1]) == SHUTTING_DOWN


def test_a_new_depth_ends_every_stream_and_starts_every_book_afresh() -> None:
    served = ServedSymbols(["ETHBTC"], 3, recheck_interval=60)
    served.publish("ETHBTC", top([1, 1, 1]))
    reader = gevent.spawn(read_all, served.stream("ETHBTC", 2, always))
    gevent.idle()
    assert served.reconfigure(["ETHBTC"], 5)
    payloads, error = reader.get(timeout=1)
    assert len(payloads) == 1 and isinstance(error, Unavailable)
    assert served.summary("ETHBTC") is None and served.depth == 5
    with pytest.raises(ValueError, match="at least one symbol"):
        served.reconfigure([], 5)


def test_a_new_default_symbol_ends_the_streams_that_asked_for_the_default_and_no_other() -> None:
    served = ServedSymbols(["ETHBTC", "BTCUSDT"], 3, recheck_interval=60)
    for symbol in served.symbols:
        served.publish(symbol, top([1, 1, 1]))
    # BookSummary and Book without a symbol, at each depth; Book naming each symbol
    default = [gevent.spawn(read_all, served.stream("", depth, always)) for depth in (0, 2)]
    named = [gevent.spawn(read_all, served.stream(symbol, depth, always))
             for symbol in ("ETHBTC", "BTCUSDT") for depth in (0, 2)]
    gevent.idle()
    assert served.reconfigure(["BTCUSDT", "ETHBTC"], 3)
    gevent.idle()
    for reader in default:
        payloads, error = reader.get(timeout=1)
        assert len(payloads) == 1 and isinstance(error, Unavailable)
        assert str(error) == "the default symbol changed from ETHBTC to BTCUSDT"
    assert not any(reader.ready() for reader in named)  # still served at the same depth
    served.publish("ETHBTC", top([2, 1, 1]))
    gevent.idle()
    assert served.stats().sent == 2 + 4 + 2  # the named ETHBTC streams had the new summary
    stream = served.stream("", 0, always)
    assert next(stream) == served.summary("BTCUSDT")  # a new BookSummary stream serves the new default
    assert served.stats().open_streams == 5
    stream.close()
    for reader in named:
        reader.kill()
    assert served.stats().open_streams == 0


def test_a_default_symbol_that_goes_ends_its_default_streams_saying_the_default_changed() -> None:
    served = ServedSymbols(["ETHBTC", "BTCUSDT"], 3, recheck_interval=60)
    served.publish("ETHBTC", top([1, 1, 1]))
    asked_default, named = (gevent.spawn(read_all, served.stream(symbol, 0, always)) for symbol in ("", "ETHBTC"))
    gevent.idle()
    assert served.reconfigure(["BTCUSDT"], 3)
    assert str(asked_default.get(timeout=1)[1]) == "the default symbol changed from ETHBTC to BTCUSDT"
    assert str(named.get(timeout=1)[1]) == "ETHBTC is no longer served at depth 3"


def test_the_open_streams_gauge_follows_streams_of_retired_books_until_they_end() -> None:
    """A catalogue change retires broadcasters with streams still open: they end a moment later. The gauge
    counted them twice (in the retired sums and then as they ended): "17 with none open" on an edge."""
    served = ServedSymbols(["ETHBTC", "BTCUSDT"], 3, recheck_interval=60)
    for symbol in served.symbols:
        served.publish(symbol, top([1, 1, 1]))
    present = [True]
    readers = [gevent.spawn(read_all, served.stream(symbol, depth, lambda: present[0]))
               for symbol in ("ETHBTC", "BTCUSDT") for depth in (0, 1, 1, 2)]
    gevent.idle()
    assert served.stats().open_streams == 8
    assert served.reconfigure(["XRPEUR"], 2)  # every book goes, with its streams
    assert served.stats().open_streams == 8  # the streams have not ended yet
    gevent.joinall(readers, timeout=1)
    stats = served.stats()
    assert (stats.open_streams, stats.sent) == (0, 8)
    assert sum(stats.send_latency.counts) == 8  # each retired broadcaster's counters kept once, not twice


# -- the open-streams gauge and the counters as properties, over random histories ------------------------------------


class _Client:
    """One stream read in a greenlet, and the client's side of it: whether it is still there, and its wake-up."""

    def __init__(self, streams: _Streams, symbol: str, depth: int) -> None:
        self.present = True
        self.wake_up = Event()
        self.reader = gevent.spawn(streams.read, streams.served.stream(symbol, depth, lambda: self.present,
                                                                      self.wake_up))

    def leave(self) -> None:
        self.present = False
        self.wake_up.set()  # as the end-of-call callback does


class _Streams:
    """Clients of ``books`` and what they received between them: the oracle for the figures."""

    def __init__(self, served: ServedSymbols) -> None:
        self.served = served
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
    served = ServedSymbols(list(_SYMBOLS), 3, recheck_interval=60)
    streams = _Streams(served)
    sent = 0
    for operation in operations:
        kind = operation[0]
        if kind == "open":
            try:
                _, depth = served.resolve(operation[1], operation[2])
            except (Unavailable, KeyError, ValueError):
                continue  # refused before any stream is counted, as the server does
            streams.open(operation[1], depth)
        elif kind == "leave":
            streams.leave(operation[1])
        elif kind == "publish":
            if operation[1] in served.symbols:
                served.publish(operation[1], top([operation[2]] + [1] * (served.depth - 1)))
        elif kind == "reconfigure":
            served.reconfigure(operation[1], operation[2])
        elif kind == "suspend":
            served.suspend("gone")
        else:
            served.resume()
        gevent.idle()  # every stream woken has run and waits again, or has ended
        stats = served.stats()
        assert stats.open_streams == streams.open_now()
        assert stats.sent == streams.received and stats.sent >= sent  # counters only go up
        sent = stats.sent
    for client in streams.clients:
        client.leave()
    gevent.joinall([client.reader for client in streams.clients], timeout=1)
    assert served.stats().open_streams == 0 == streams.open_now()
    assert served.stats().sent == streams.received
