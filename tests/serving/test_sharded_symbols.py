"""An edge's shards served as one (:class:`ShardedSymbols`): routing by symbol, the union in ``Symbols``, the
default symbol, and a shard suspended on its own, its streams ended and its symbols shown with no venue in step,
the other shards' streams untouched."""

from __future__ import annotations

import gevent
import pytest

from orderbook.proto import orderbook_pb2
from orderbook.serving.shards import NO_SHARD, ShardedSymbols
from orderbook.serving.symbols import SHUTTING_DOWN, DepthNotServed, ServedSymbols, Unavailable, UnknownSymbol
from orderbook.symbol_state import SymbolState
from tests.support.streams import read_all

BOTH = ("binance", "bitstamp")


def summary(price: float) -> bytes:
    return orderbook_pb2.Summary(spread=1.0, bids=[orderbook_pb2.Level(exchange="binance", price=price, amount=1)],
                                 asks=[orderbook_pb2.Level(exchange="bitstamp", price=price + 1, amount=1)]
                                 ).SerializeToString()


def shard(symbols: tuple[str, ...], depth: int = 10) -> ServedSymbols:
    served = ServedSymbols(symbols, depth, recheck_interval=60)
    for index, symbol in enumerate(symbols):
        served.set_state(SymbolState(symbol, BOTH, BOTH))
        served.publish_summary(symbol, summary(index + 1.0))
    return served


def always() -> bool:
    return True


@pytest.fixture
def books() -> ShardedSymbols:
    books = ShardedSymbols()
    books.add("b", shard(("ETHUSDT", "BNBBTC"), depth=5))
    books.add("a", shard(("ETHBTC", "BTCUSDT")))
    return books


def test_the_union_lists_the_shards_by_name_and_routes_each_symbol_to_its_shard(books: ShardedSymbols) -> None:
    assert books.symbols == ("ETHBTC", "BTCUSDT", "ETHUSDT", "BNBBTC")
    assert [state.symbol for state in books.states()] == list(books.symbols)
    assert books.default == "ETHBTC" and books.unavailable is None
    assert books.resolve("", 0) == ("ETHBTC", 10)
    assert books.resolve("BNBBTC", 0) == ("BNBBTC", 5)  # each shard's own depth
    with pytest.raises(DepthNotServed):
        books.resolve("BNBBTC", 6)
    with pytest.raises(UnknownSymbol):
        books.resolve("XRPBTC", 0)
    assert next(books.stream("BNBBTC", 0, always)) == summary(2.0)
    assert next(books.stream("", 0, always)) == summary(1.0)


def test_a_default_symbol_given_is_served_by_whichever_shard_has_it(books: ShardedSymbols) -> None:
    given = ShardedSymbols("ETHUSDT")
    given.add("a", shard(("ETHBTC",)))
    assert given.default == "ETHUSDT"
    with pytest.raises(UnknownSymbol):
        given.resolve("", 0)  # no shard has it yet
    given.add("b", shard(("ETHUSDT",)))
    assert next(given.stream("", 0, always)) == summary(1.0) and given.resolve("", 0) == ("ETHUSDT", 10)


def test_a_suspended_shard_ends_only_its_streams_and_shows_its_symbols_with_no_venue_in_step(
        books: ShardedSymbols) -> None:
    streams = {symbol: gevent.spawn(read_all, books.stream(symbol, 0, always)) for symbol in books.symbols}
    gevent.idle()
    books.shard("b").suspend("the leader of shard b has not been heard for 5 s")
    for symbol in ("ETHUSDT", "BNBBTC"):
        payloads, error = streams[symbol].get(timeout=1)
        assert len(payloads) == 1 and isinstance(error, Unavailable)
    with pytest.raises(Unavailable, match="shard b"):
        books.resolve("ETHUSDT", 0)
    assert all(not streams[symbol].ready() for symbol in ("ETHBTC", "BTCUSDT"))
    assert {state.symbol: state.exchanges_in_step for state in books.states()} == {
        "ETHBTC": BOTH, "BTCUSDT": BOTH, "ETHUSDT": (), "BNBBTC": ()}
    assert books.unavailable is None
    books.shard("a").suspend("the leader of shard a has not been heard for 5 s")
    assert books.unavailable == NO_SHARD
    books.close()
    assert books.unavailable == SHUTTING_DOWN
    gevent.killall(list(streams.values()))


def test_a_shard_removed_ends_its_streams_and_its_figures_stay_in_the_sums(books: ShardedSymbols) -> None:
    published = books.published_total
    reader = gevent.spawn(read_all, books.stream("ETHUSDT", 0, always))
    gevent.idle()
    books.remove("b")
    payloads, error = reader.get(timeout=1)
    assert len(payloads) == 1 and isinstance(error, Unavailable)
    assert books.symbols == ("ETHBTC", "BTCUSDT") and books.published_total == published
    assert books.stats().sent >= 1


def test_a_stream_of_the_default_symbol_ends_when_a_shard_named_before_comes_with_another() -> None:
    books = ShardedSymbols()
    books.add("b", shard(("ETHUSDT",)))
    ended: list[BaseException | None] = []
    stream = books.stream("", 0, always)
    assert next(stream) == summary(1.0)
    books.add("a", shard(("ETHBTC",)))
    ended.append(read_all(stream)[1])
    assert isinstance(ended[0], Unavailable) and "ETHUSDT to ETHBTC" in str(ended[0])
    assert books.symbols == ("ETHBTC", "ETHUSDT") and books.default == "ETHBTC"
