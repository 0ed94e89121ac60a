"""Many symbols in one service, as a user runs it: the simulator serving four symbols (one of them on Bitstamp
only), bin/run-server following them all, and a gRPC client per symbol on OrderbookStreams.Book. Each stream must
equal its symbol's truth; a fault in one symbol's stream must leave the others streaming, untouched."""

from __future__ import annotations

import re
import time

import grpc
import pytest

from orderbook.proto import orderbook_pb2, orderbook_streams_pb2
from tests.bench.symbols import symbol_names
from tests.metrics_scrape import Samples, scrape
from tests.support.service import BOOK_METHOD, Book, symbol_states, wait_until_matches_truth
from tests.support.waiting import wait_until

BOTH_VENUES = ("ETHBTC", "BTCUSDT", "ETHUSDT")
BITSTAMP_ONLY = "LTCEUR"
SYMBOLS = (*BOTH_VENUES, BITSTAMP_ONLY)
EXCHANGES = {symbol: ("binance", "bitstamp") for symbol in BOTH_VENUES} | {BITSTAMP_ONLY: ("bitstamp",)}
IN_STEP_WITHIN = 30.0
"""Binance's 1,000-level snapshots are paced a second apart (half its request weight a minute)."""
SMALL_SNAPSHOTS = ("--binance-snapshot-limit", "100")
"""100-level Binance snapshots (weight 5: paced a tenth of a second apart), for the tests that only read the books
(in their top 10: a few seconds of 20 events a second never reach past level 100) and need no rebuild to be slow."""
MAX_PAUSE = 1.5
"""A symbol's stream at 20 events a second per venue: a summary at least every few hundred milliseconds."""


def start_system(simulator_factory, server_factory, reader_factory, *server_args: str):
    simulator = simulator_factory("--seed", "5", "--rate", "20", "--symbol", ",".join(BOTH_VENUES),
                                  "--bitstamp-only-symbol", BITSTAMP_ONLY)
    server = server_factory(simulator.urls, "--symbol", ",".join(SYMBOLS), *server_args)
    server.wait_serving()
    wait_until(lambda: symbol_states(server.target), IN_STEP_WITHIN, "every symbol in step on its venues",
               accept=lambda states: all(states[s][1] == EXCHANGES[s] for s in SYMBOLS), interval=0.2)
    readers = {symbol: reader_factory(server.target, symbol) for symbol in SYMBOLS}
    return simulator, server, readers


@pytest.fixture
def system(simulator_factory, server_factory, reader_factory):
    """Every symbol in step, with SMALL_SNAPSHOTS: in step within a second or so, not three."""
    return start_system(simulator_factory, server_factory, reader_factory, *SMALL_SNAPSHOTS)


@pytest.fixture
def system_paced_a_second_apart(simulator_factory, server_factory, reader_factory):
    """Every symbol in step, with Binance's default 1,000-level snapshots: a rebuild that needs a few of them (a
    symbol's, or every symbol's after a reconnect) stays out for seconds, long enough to be seen out."""
    return start_system(simulator_factory, server_factory, reader_factory)


def truth(simulator, symbol: str) -> Book:
    return Book.from_truth(simulator.control.truth(10, symbol=symbol)["merged"])


def assert_every_stream_equals_its_truth(simulator, readers) -> None:
    simulator.control.pause()
    for symbol, reader in readers.items():
        served = wait_until_matches_truth(reader, lambda symbol=symbol: truth(simulator, symbol), 10)
        assert served.exchanges() == set(EXCHANGES[symbol]), symbol
        assert len(served.bids) == len(served.asks) == 10
    simulator.control.resume()


def test_each_symbols_stream_equals_its_truth_and_symbols_names_its_venues(system):
    simulator, server, readers = system
    assert list(symbol_states(server.target)) == list(SYMBOLS)  # configured order, the default first
    assert_every_stream_equals_its_truth(simulator, readers)
    assert "Binance does not list LTCEUR, which is served without it" in server.log()
    assert server.terminate() == 0
    assert "Traceback" not in server.log()


def test_a_gap_on_one_symbol_rebuilds_only_it_and_the_others_never_pause(system_paced_a_second_apart):
    simulator, server, readers = system_paced_a_second_apart
    simulator.control.stale_snapshot(count=2, symbol="BTCUSDT")  # keeps it out long enough to be seen out
    started = time.monotonic()
    simulator.control.gap(events=3, symbol="BTCUSDT")

    readers["BTCUSDT"].wait_for(lambda book: "binance" not in book.exchanges(), 5, "BTCUSDT without Binance")
    wait_until(lambda: symbol_states(server.target)["BTCUSDT"], 5, "Symbols showing BTCUSDT out of step on Binance",
               accept=lambda state: state == (("binance", "bitstamp"), ("bitstamp",)), interval=0.05)
    readers["BTCUSDT"].wait_for(lambda book: "binance" in book.exchanges(), 20, "BTCUSDT with Binance again")
    wait_until(lambda: symbol_states(server.target)["BTCUSDT"], 5, "Symbols showing BTCUSDT back in step",
               accept=lambda state: state == (("binance", "bitstamp"), ("binance", "bitstamp")), interval=0.05)
    ended = time.monotonic()

    for symbol in ("ETHBTC", "ETHUSDT", BITSTAMP_ONLY):
        pause = readers[symbol].longest_pause(started, ended)
        assert pause < MAX_PAUSE, f"{symbol}'s stream paused {pause:.2f} s while BTCUSDT was rebuilt"
        assert readers[symbol].latest.exchanges() == set(EXCHANGES[symbol])
    log = server.log()
    assert "binance BTCUSDT: rebuilding the book: gap" in log
    assert "session ended" not in log, "the connection was dropped for one symbol's gap"
    assert_every_stream_equals_its_truth(simulator, readers)


def test_a_dropped_connection_recovers_every_symbol(system_paced_a_second_apart):
    simulator, server, readers = system_paced_a_second_apart
    simulator.control.drop("binance")
    for symbol in BOTH_VENUES:
        readers[symbol].wait_for(lambda book: "binance" not in book.exchanges(), 5, f"{symbol} without Binance")
    for symbol in BOTH_VENUES:
        readers[symbol].wait_for(lambda book: "binance" in book.exchanges(), IN_STEP_WITHIN,
                                 f"{symbol} with Binance again")
    assert "binance: session ended (disconnect)" in server.log()
    assert_every_stream_equals_its_truth(simulator, readers)


def test_book_answers_depth_unknown_symbols_and_bad_depths_with_their_status(system):
    _, server, readers = system
    with grpc.insecure_channel(server.target) as channel:
        book = channel.unary_stream(BOOK_METHOD, request_serializer=orderbook_streams_pb2.BookRequest.SerializeToString,
                                    response_deserializer=orderbook_pb2.Summary.FromString)
        first = next(iter(book(orderbook_streams_pb2.BookRequest(symbol="ETHUSDT", depth=3), timeout=5)))
        assert len(first.bids) == len(first.asks) == 3
        default = next(iter(book(orderbook_streams_pb2.BookRequest(), timeout=5)))  # "" and 0: ETHBTC, --depth
        assert len(default.bids) == 10
        for request, code in ((orderbook_streams_pb2.BookRequest(symbol="NOSUCH"), grpc.StatusCode.NOT_FOUND),
                              (orderbook_streams_pb2.BookRequest(symbol="ETHBTC", depth=11),
                               grpc.StatusCode.INVALID_ARGUMENT)):
            with pytest.raises(grpc.RpcError) as caught:
                next(iter(book(request, timeout=5)))
            assert caught.value.code() == code, caught.value
    assert readers["ETHBTC"].error is None


def test_a_symbol_no_venue_lists_is_a_configuration_error(simulator_factory, server_factory):
    simulator = simulator_factory("--rate", "5", "--symbol", "ETHBTC")
    server = server_factory(simulator.urls, "--symbol", "ETHBTC,NOSUCHPAIR")
    assert server.proc.wait(20) == 2
    errors = [line for line in server.log().splitlines() if line.startswith("run-server: error:")]
    assert errors == ["run-server: error: --symbol NOSUCHPAIR: no venue lists it (Binance, Bitstamp)"]


MANY = 20
"""Symbols started at the default settings: their Binance books in step on first snapshots of 100 levels (weight 5,
paced a tenth of a second apart), then deepened to the 1,000 levels kept (weight 50, a second apart)."""


def test_many_symbols_at_the_defaults_come_in_step_then_are_deepened_with_no_rate_limit_answer(
    simulator_factory, server_factory
):
    symbols = symbol_names(MANY)
    simulator = simulator_factory("--seed", "9", "--rate", "5", "--symbol", ",".join(symbols))
    server = server_factory(simulator.urls, "--symbol", ",".join(symbols))  # nothing else: the defaults
    server.wait_serving()

    def settled(samples: Samples) -> bool:
        return samples("orderbook_exchange_in_step") == 2 * MANY and samples("orderbook_book_deepening") == 0 and all(
            samples("orderbook_book_deepenings_total", exchange="binance", symbol=symbol, result="deepened") >= 1
            for symbol in symbols)

    wait_until(lambda: scrape(server.metrics_port), 30 + 2 * MANY, "every book in step and deepened",
               accept=settled, interval=0.25)
    simulator.control.pause()
    samples = scrape(server.metrics_port)
    for symbol in symbols:  # the venue's whole book (300 levels: under the 1,000 asked for), not the first 100
        truth = simulator.control.truth(symbol=symbol)["binance"]
        levels = {side: samples("orderbook_book_levels", exchange="binance", symbol=symbol, side=side)
                  for side in ("bid", "ask")}
        assert levels == {"bid": len(truth["bids"]), "ask": len(truth["asks"])} and levels["bid"] > 100, symbol
    stats = simulator.control.stats()
    assert [stats[venue].get("rest_rate_limited", 0) for venue in ("binance", "bitstamp")] == [0, 0]
    assert samples("orderbook_snapshot_errors_total") == 0, "no 429, 418, or any other refusal"
    assert samples("orderbook_book_rebuilds_total") == 0
    log = server.log()
    first = re.findall(r"binance \w+: in step from snapshot \d+ \((\d+) bids, \d+ asks\); "
                       r"to be deepened to 1000 levels", log)
    assert len(first) == MANY and all(int(bids) < 110 for bids in first), first  # 100 levels, and the diffs after
    assert "Traceback" not in log
