"""An edge's source and what Redis stores: an update stored before its symbol was known is not lost, and a stored
value no leader would write is refused without being copied out of Redis."""

from __future__ import annotations

import redis

from orderbook.relay import envelope
from orderbook.relay.keys import Keys
from orderbook.relay.metrics import EdgeStats
from orderbook.relay.source import RedisSource
from orderbook.serving.symbols import ServedSymbols
from tests.relay.forge import state, summary
from tests.support.redis_server import RedisServer

KEYS = Keys()


def test_an_update_stored_before_its_symbol_was_known_is_served_once_the_catalogue_comes(
        redis_server: RedisServer, redis_client: redis.Redis) -> None:
    redis_client.set(KEYS.lease, "1 leader")
    redis_client.hset(KEYS.latest, "ETHBTC", envelope.update(1, 2, "leader", state(), summary(1.0)))
    served = ServedSymbols((), 1)
    stats = EdgeStats()
    source = RedisSource(redis_server.url, served, stats, on_change=lambda: None)
    source.catch_up()  # as on connecting with no catalogue stored (no leader alive then): nothing to read for
    assert served.symbols == ()
    source.take(envelope.heartbeat(1, 3, "leader", ["ETHBTC"], 10), live=True)
    assert served.symbols == ("ETHBTC",) and served.summary("ETHBTC") is None and source.behind
    source.catch_up()
    assert served.summary("ETHBTC") == summary(1.0) and not source.behind
    source.take(envelope.heartbeat(1, 4, "leader", ["ETHBTC"], 10), live=True)
    assert not source.behind  # the same catalogue: nothing to read again


def test_stored_values_are_taken_newest_first_and_a_stuffed_one_is_refused_unread(
        redis_server: RedisServer, redis_client: redis.Redis) -> None:
    """The stored latest of a quiet symbol may be millions of sequence numbers behind a busy one's: read newest
    first, none looks like a jump. A value larger than an envelope is refused by its size, never sent over."""
    redis_client.set(KEYS.lease, "1 leader")
    redis_client.hset(KEYS.latest, mapping={
        "ETHBTC": envelope.update(1, 2, "leader", state(), summary(1.0)),
        "BTCUSDT": envelope.update(1, 5_000_000, "leader", state("BTCUSDT"), summary(2.0)),
        "XRPEUR": b"x" * (envelope.MAX_ENVELOPE + 1),
    })
    served = ServedSymbols((), 1)
    stats = EdgeStats()
    source = RedisSource(redis_server.url, served, stats, on_change=lambda: None)
    source.take(envelope.heartbeat(1, 5_000_001, "leader", ["ETHBTC", "BTCUSDT", "XRPEUR"], 10), live=False)
    before = redis_client.info("stats")["total_net_output_bytes"]
    source.catch_up()
    assert (served.summary("ETHBTC"), served.summary("BTCUSDT"), served.summary("XRPEUR")) == (
        summary(1.0), summary(2.0), None)
    assert stats.rejected == {"malformed": 1}
    assert redis_client.info("stats")["total_net_output_bytes"] - before < envelope.MAX_ENVELOPE // 2
