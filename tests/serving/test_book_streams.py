"""OrderbookStreams (Book, Symbols) over real gRPC, from one process and from two serving processes fed by it.

The helper (serve_helper.py) serves three symbols; the i-th symbol's prices are i above the first one's, and a
summary's first bid amount is its number, so a client can tell which symbol and which summary it got.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from serving_support import Helper, book, book_summary, symbols

from orderbook.proto import orderbook_pb2, orderbook_streams_pb2
from tests.support.waiting import wait_until

SYMBOLS = ("ETHBTC", "BTCUSDT", "ETHUSDT")
MODES = {"one process": (), "two serving processes": ("--serve-processes", "2")}
EMPTY = orderbook_pb2.Empty()


def request(symbol: str = "", depth: int = 0) -> orderbook_streams_pb2.BookRequest:
    return orderbook_streams_pb2.BookRequest(symbol=symbol, depth=depth)


def price(text: str, index: int) -> float:
    """A helper price of the ``index``-th symbol, as the nearest float (what the server sends)."""
    return float(Decimal(text) + index)


def publish_each_symbol_once(helper: Helper) -> Helper:
    for symbol in SYMBOLS:
        helper.command(f"publish {symbol}")
    return helper


@pytest.fixture(params=list(MODES))
def server(request: pytest.FixtureRequest, start_helper: Callable[..., Helper]) -> Helper:
    """Three symbols, each published once (summaries 1, 2 and 3), and nothing more unless a test asks: a server
    of the test's own, for a test that changes what it serves."""
    return publish_each_symbol_once(
        start_helper("--interval", "0", "--symbols", ",".join(SYMBOLS), *MODES[request.param]))


@pytest.fixture(scope="module", params=list(MODES))
def shared_server(starts_processes: None, request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helper]:
    """The same as ``server``, one per mode for the tests that only read it: they publish nothing, set no state,
    and end every stream they open."""
    helper = Helper(["--interval", "0", "--symbols", ",".join(SYMBOLS), *MODES[request.param]],
                    tmp_path_factory.mktemp("book-streams") / "helper.stderr")
    try:
        yield publish_each_symbol_once(helper)
    finally:
        helper.close()


@pytest.fixture
def channel(server: Helper) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as opened:
        yield opened


@pytest.fixture
def shared_channel(shared_server: Helper) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(shared_server.target) as opened:
        yield opened


def test_each_symbol_is_streamed_at_the_depth_asked(shared_channel: grpc.Channel) -> None:
    for index, symbol in enumerate(SYMBOLS):
        call = book(shared_channel)(request(symbol, 3), timeout=10)
        summary = next(call)
        call.cancel()
        assert [level.price for level in summary.bids] == [price(p, index) for p in ("0.05123", "0.05122", "0.05121")]
        assert [level.price for level in summary.asks] == [price(p, index) for p in ("0.05124", "0.05125", "0.05126")]
        assert [level.exchange for level in summary.asks] == ["binance", "bitstamp", "binance"]
        assert summary.bids[0].amount == index + 1 and summary.spread == 1e-05


def test_the_default_symbol_at_full_depth_is_what_book_summary_serves(shared_channel: grpc.Channel) -> None:
    summary_call = book_summary(shared_channel)(EMPTY, timeout=10)
    book_call = book(shared_channel)(request(), timeout=10)
    served, streamed = next(summary_call), next(book_call)
    assert streamed == served == next(iter(book(shared_channel)(request("ETHBTC", 10), timeout=10)))
    assert len(served.bids) == len(served.asks) == 10 and served.bids[0].amount == 1
    for call in (summary_call, book_call):
        call.cancel()


def test_a_change_below_the_depth_asked_is_not_sent_to_its_streams(server: Helper, channel: grpc.Channel) -> None:
    shallow = book(channel)(request("BTCUSDT", 3), timeout=10)
    full = book(channel)(request("BTCUSDT"), timeout=10)
    assert next(shallow).bids[0].amount == next(full).bids[0].amount == 2
    server.command("deep BTCUSDT")  # the 10th ask only (its amount becomes 4)
    deep = next(full)
    assert (deep.bids[0].amount, deep.asks[-1].amount) == (2, 4)
    server.command("publish BTCUSDT")  # summary 5: the best bid changes
    assert next(shallow).bids[0].amount == 5  # the next one it gets: the deep change never reached it
    assert next(full).bids[0].amount == 5
    for call in (shallow, full):
        call.cancel()


def test_an_unknown_symbol_is_not_found_and_names_it(shared_channel: grpc.Channel) -> None:
    for symbol, shown in [("XRPEUR", "'XRPEUR'"), ("ethbtc", "'ethbtc'"), ("X" * 5000, f"'{'X' * 40}...'")]:
        with pytest.raises(grpc.RpcError) as unknown:
            next(book(shared_channel)(request(symbol, 3), timeout=10))
        assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
        assert unknown.value.details() == f"unknown symbol {shown}: this server serves 3 symbols, listed by Symbols"


def test_a_depth_beyond_the_servers_is_an_invalid_argument_that_says_what_may_be_asked(
    shared_channel: grpc.Channel,
) -> None:
    for depth in (11, 2**32 - 1):
        with pytest.raises(grpc.RpcError) as refused:
            next(book(shared_channel)(request("BTCUSDT", depth), timeout=10))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details() == (f"depth {depth} is more than the 10 levels a side this server serves "
                                           "(ask for 1 to 10, or 0 for all)")


def test_symbols_lists_every_symbol_in_order_with_its_venues_as_they_change(
    server: Helper, channel: grpc.Channel
) -> None:
    def listed() -> list[tuple[str, list[str], list[str]]]:
        answer = symbols(channel)(EMPTY, timeout=10)
        return [(state.symbol, list(state.exchanges), list(state.exchanges_in_step)) for state in answer.symbols]

    assert listed() == [(symbol, [], []) for symbol in SYMBOLS]  # nothing said about the venues yet
    server.command("state BTCUSDT binance,bitstamp binance")
    server.command("state ETHUSDT bitstamp -")
    expected = [("ETHBTC", [], []), ("BTCUSDT", ["binance", "bitstamp"], ["binance"]), ("ETHUSDT", ["bitstamp"], [])]
    wait_until(listed, 10, "Symbols to show the new states", accept=lambda states: states == expected)
    server.command("state BTCUSDT binance,bitstamp binance,bitstamp")
    expected[1] = ("BTCUSDT", ["binance", "bitstamp"], ["binance", "bitstamp"])
    wait_until(listed, 10, "Symbols to show bitstamp in step", accept=lambda states: states == expected)


def test_reflection_describes_both_services(shared_channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(shared_channel)
    assert {"orderbook.OrderbookAggregator", "orderbook.OrderbookStreams"} <= set(database.get_services())
    pool = DescriptorPool(database)
    streams = pool.FindServiceByName("orderbook.OrderbookStreams")
    signatures = {name: (method.input_type.full_name, method.output_type.full_name, method.server_streaming)
                  for name, method in streams.methods_by_name.items()}
    assert signatures == {"Book": ("orderbook.BookRequest", "orderbook.Summary", True),
                          "Symbols": ("orderbook.Empty", "orderbook.SymbolList", False)}
    assert [field.name for field in pool.FindMessageTypeByName("orderbook.SymbolState").fields] == [
        "symbol", "exchanges", "exchanges_in_step"]
    summary = pool.FindServiceByName("orderbook.OrderbookAggregator").methods_by_name["BookSummary"]
    assert (summary.input_type.full_name, summary.output_type.full_name) == ("orderbook.Empty", "orderbook.Summary")


def test_a_new_default_symbol_ends_the_streams_that_asked_for_the_default_and_no_other(
        start_helper: Callable[..., Helper]) -> None:
    """A Summary does not name its symbol: a client of the default symbol must not go on receiving the old one's."""
    helper = publish_each_symbol_once(start_helper("--interval", "0", "--symbols", ",".join(SYMBOLS)))
    with grpc.insecure_channel(helper.target) as channel:
        asked_default = [book_summary(channel)(EMPTY, timeout=10), book(channel)(request(), timeout=10),
                         book(channel)(request(depth=3), timeout=10)]
        named = book(channel)(request("ETHBTC"), timeout=10)
        assert all(next(call).bids for call in (*asked_default, named))
        helper.command(f"catalogue BTCUSDT,{SYMBOLS[0]},{SYMBOLS[2]}")
        for call in asked_default:
            with pytest.raises(grpc.RpcError) as ended:
                next(call)
            assert (ended.value.code(), ended.value.details()) == (
                grpc.StatusCode.UNAVAILABLE, "the default symbol changed from ETHBTC to BTCUSDT")
        helper.command("publish ETHBTC")
        assert next(named).bids[0].amount == 4  # the named stream goes on: summary 4, ETHBTC's next
        named.cancel()
        now_default = book_summary(channel)(EMPTY, timeout=10)
        assert next(now_default).bids[0].price == price("0.05123", 1)  # BTCUSDT's book
        now_default.cancel()
