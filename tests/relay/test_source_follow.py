"""An edge's source and what Redis stores: an update stored before its symbol was known is not lost."""

from __future__ import annotations

import redis

from orderbook.relay import envelope, keys
from orderbook.relay.metrics import EdgeStats
from orderbook.relay.source import RedisSource
from orderbook.serving.symbols import SymbolBooks, SymbolState
from tests.support.redis_server import RedisServer

STATE = SymbolState("ETHBTC", ("binance", "bitstamp"), ("binance",))


def test_an_update_stored_before_its_symbol_was_known_is_served_once_the_catalogue_comes(
        redis_server: RedisServer, redis_client: redis.Redis) -> None:
    redis_client.hset(keys.LATEST, "ETHBTC", envelope.update(1, 2, "leader", STATE, b"\x09stored"))
    books = SymbolBooks((), 1)
    stats = EdgeStats()
    source = RedisSource(redis_server.url, books, stats, on_change=lambda: None)
    source.catch_up()  # as on connecting with no catalogue stored (no leader alive then)
    assert stats.dropped["unknown_symbol"] == 1 and books.symbols == ()
    source.take(envelope.heartbeat(1, 3, "leader", ["ETHBTC"], 10), live=True)
    assert books.symbols == ("ETHBTC",) and books.summary("ETHBTC") is None and source.behind
    source.catch_up()
    assert books.summary("ETHBTC") == b"\x09stored" and not source.behind
    source.take(envelope.heartbeat(1, 4, "leader", ["ETHBTC"], 10), live=True)
    assert not source.behind  # the same catalogue: nothing to read again
