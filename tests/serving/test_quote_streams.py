"""OrderbookQuotes.Quote over real gRPC, from one process and from two serving processes fed by it: the first
update once a venue is in step, one on every change and none without, the checks on the request, the bound on
streams, reflection, and an edge's UNIMPLEMENTED. The helper's books are set by command (serve_helper.py)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from serving_support import Helper, book, quote

from orderbook.proto import orderbook_quotes_pb2, orderbook_streams_pb2
from orderbook.serving.grpc_server import NO_QUOTES_HERE
from tests.support.waiting import wait_until

SYMBOLS = ("ETHBTC", "BTCUSDT")
MODES = {"one process": (), "two serving processes": ("--serve-processes", "2")}
BUY, SELL = orderbook_quotes_pb2.BUY, orderbook_quotes_pb2.SELL


def request(amount: float, side: int = BUY, symbol: str = "", net: bool = False) -> orderbook_quotes_pb2.QuoteRequest:
    return orderbook_quotes_pb2.QuoteRequest(symbol=symbol, side=side, amount=amount, net_of_fees=net)  # type: ignore[arg-type]


def fills(update: orderbook_quotes_pb2.QuoteUpdate) -> list[tuple[str, float, float]]:
    return [(fill.exchange, fill.amount, fill.average_price) for fill in update.fills]


@pytest.fixture(params=list(MODES))
def server(request: pytest.FixtureRequest, start_helper: Callable[..., Helper]) -> Helper:
    return start_helper("--interval", "0", "--symbols", ",".join(SYMBOLS), "--max-streams", "4",
                        "--max-streams-per-connection", "8", "--taker-fee", "binance=0.01,bitstamp=0.001",
                        *MODES[request.param])


@pytest.fixture
def channel(server: Helper) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as opened:
        yield opened


def test_the_first_update_waits_for_a_venue_in_step_then_each_change_is_sent(server: Helper,
                                                                            channel: grpc.Channel) -> None:
    call = quote(channel)(request(3), timeout=20)
    server.command("book ETHBTC binance 9:1 10:1,12:5")
    first = next(call)
    assert (first.amount, first.filled, first.cost, first.worst_price) == (3, 3, 10 + 24, 12)
    assert first.average_price == 34 / 3 and fills(first) == [("binance", 3, 34 / 3)]
    server.command("book ETHBTC bitstamp 9:1 11:2")
    second = next(call)
    assert (second.filled, second.cost, second.worst_price) == (3, 10 + 22, 11)
    assert fills(second) == [("bitstamp", 2, 11), ("binance", 1, 10)]
    server.command("book ETHBTC bitstamp 8:1 11:2")  # the bids moved: nothing this buy walks
    server.command("book BTCUSDT bitstamp 8:1 11:2")  # another symbol
    server.command("detach ETHBTC bitstamp")  # out of step: it takes no part
    assert fills(next(call)) == [("binance", 3, 34 / 3)]
    server.command("detach ETHBTC binance")  # no venue: nothing can be filled
    empty = next(call)
    assert (empty.amount, empty.filled, empty.cost, list(empty.fills)) == (3, 0, 0, [])
    assert math.isnan(empty.average_price) and math.isnan(empty.worst_price)
    call.cancel()
    assert server.stats()["quote_updates_published"] == 4
    wait_until(server.stats, 10, "the updates sent counted",  # serving processes report every second
               accept=lambda stats: stats["quote_updates_sent"] == 4)


def test_net_of_fees_routes_to_the_cheaper_venue_after_fees(server: Helper, channel: grpc.Channel) -> None:
    server.command("book BTCUSDT binance 99.9:1 100:1")
    server.command("book BTCUSDT bitstamp 99.5:1 100.5:1")
    gross = quote(channel)(request(1, BUY, "BTCUSDT"), timeout=20)
    net = quote(channel)(request(1, BUY, "BTCUSDT", net=True), timeout=20)
    sell = quote(channel)(request(1, SELL, "BTCUSDT", net=True), timeout=20)
    assert fills(next(gross)) == [("binance", 1, 100)]
    assert fills(next(net)) == [("bitstamp", 1, 100.6005)]  # 100.5 x 1.001, exact, against binance's 100 x 1.01
    net_sell = next(sell)
    assert (fills(net_sell), net_sell.worst_price) == ([("bitstamp", 1, 99.4005)], 99.5)  # binance 99.9 x 0.99
    for call in (gross, net, sell):
        call.cancel()


def test_a_second_stream_of_the_same_quote_gets_the_current_update_at_once(server: Helper,
                                                                          channel: grpc.Channel) -> None:
    server.command("book ETHBTC binance 9:1 10:1")
    first = quote(channel)(request(0.5), timeout=20)
    assert next(first).cost == 5
    second = quote(channel)(request(0.5), timeout=20)
    assert next(second).cost == 5
    wait_until(server.stats, 10, "both quote streams counted", accept=lambda stats: stats["quote_streams"] == 2)
    for call in (first, second):
        call.cancel()
    wait_until(server.stats, 10, "no quote stream left", accept=lambda stats: stats["quote_streams"] == 0)


@pytest.mark.parametrize("asked", [
    request(0), request(-1), request(math.nan), request(math.inf), request(-math.inf), request(1, side=7)])
def test_an_amount_not_finite_and_above_0_or_an_unknown_side_is_an_invalid_argument(
        server: Helper, channel: grpc.Channel, asked: orderbook_quotes_pb2.QuoteRequest) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        next(quote(channel)(asked, timeout=20))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "amount" in (refused.value.details() or "") or "side" in (refused.value.details() or "")


def test_an_unknown_symbol_is_not_found(server: Helper, channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as unknown:
        next(quote(channel)(request(1, symbol="XRPEUR"), timeout=20))
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    assert unknown.value.details() == "unknown symbol 'XRPEUR': this server serves 2 symbols, listed by Symbols"


def test_quote_streams_count_against_max_streams_with_book_streams(server: Helper, channel: grpc.Channel) -> None:
    server.command("book ETHBTC binance 9:1 10:1")
    server.command("publish ETHBTC")
    streams: list[Any] = [quote(channel)(request(1), timeout=20), quote(channel)(request(2), timeout=20),
                          book(channel)(orderbook_streams_pb2.BookRequest(), timeout=20)]
    for call in streams:
        next(call)
    in_one_process = "--serve-processes" not in server.proc.args  # type: ignore[operator]
    if in_one_process:  # two serving processes have 2 streams each: the kernel decides where each connection goes
        streams.append(quote(channel)(request(3), timeout=20))
        next(streams[-1])
        with pytest.raises(grpc.RpcError) as refused:
            next(quote(channel)(request(4), timeout=20))
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.details() == ("all 4 streams (Book, BookSummary and Quote together) are taken; "
                                           "try again later")
    for call in streams:
        call.cancel()


def test_reflection_lists_the_quotes_service(server: Helper, channel: grpc.Channel) -> None:
    pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    method = pool.FindServiceByName("orderbook.OrderbookQuotes").methods_by_name["Quote"]
    assert (method.input_type.full_name, method.output_type.full_name) == ("orderbook.QuoteRequest",
                                                                           "orderbook.QuoteUpdate")


def test_a_server_without_quotes_answers_unimplemented_naming_the_book_nodes(
        start_helper: Callable[..., Helper]) -> None:
    helper = start_helper("--interval", "0", "--no-quotes")
    with grpc.insecure_channel(helper.target) as channel, pytest.raises(grpc.RpcError) as refused:
        next(quote(channel)(request(1), timeout=20))
    assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert refused.value.details() == NO_QUOTES_HERE
    assert "book nodes (bin/run-server)" in NO_QUOTES_HERE
