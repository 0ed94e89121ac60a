"""An edge's source, envelope by envelope (:meth:`RedisSource.take` is what every read ends in; Redis is there for
the lease, which a catalogue change is checked against).

What a client of the edge sees must be exactly the newest leader's newest summary of each symbol, whatever order
the channel and the stored values bring them in, and nothing from a deposed leader; a value no leader would send
is counted under its reason and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from orderbook.relay import envelope
from orderbook.relay.keys import Keys
from orderbook.relay.metrics import EdgeStats
from orderbook.relay.source import MAX_SEQUENCE_JUMP, RedisSource
from orderbook.relay.timing import TICK
from orderbook.serving.symbols import ServedSymbols
from orderbook.symbol_state import SymbolState
from tests.relay.forge import state, summary
from tests.support.redis_server import RedisServer

KEYS = Keys()


class Edge:
    def __init__(self, url: str) -> None:
        self.served = ServedSymbols((), 1)
        self.stats = EdgeStats()
        self.changes = 0
        self.source = RedisSource(url, self.served, self.stats, on_change=self.changed)

    def changed(self) -> None:
        self.changes += 1

    def take(self, data: bytes, live: bool = True) -> bool:
        return self.source.take(data, live)


def beat(epoch: int, sequence: int, symbols: tuple[str, ...] = ("ETHBTC", "BTCUSDT"), depth: int = 10,
         node: str = "node") -> bytes:
    return envelope.heartbeat(epoch, sequence, node, symbols, depth)


def upd(epoch: int, sequence: int, summary_bytes: bytes, symbol: str = "ETHBTC") -> bytes:
    return envelope.update(epoch, sequence, "node", state(symbol), summary_bytes)


@pytest.fixture
def new_edge(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[Edge]:
    """An edge that has heard nothing yet; the lease is node's, of epoch 1."""
    redis_client.set(KEYS.lease, "1 node")
    yield Edge(redis_server.url)


@pytest.fixture
def edge(new_edge: Edge) -> Edge:
    """An edge that has the leader's catalogue: ETHBTC and BTCUSDT at depth 10."""
    assert new_edge.take(beat(1, 1))
    return new_edge


def test_the_heartbeat_teaches_the_symbols_and_depth_and_the_leader_is_heard(new_edge: Edge,
                                                                              redis_client: redis.Redis) -> None:
    redis_client.set(KEYS.lease, "4 node")
    assert new_edge.source.last_heard is None
    new_edge.take(beat(4, 1, ("BTCUSDT", "ETHBTC"), 25))
    assert (new_edge.served.symbols, new_edge.served.default, new_edge.served.depth) == (("BTCUSDT", "ETHBTC"),
                                                                                      "BTCUSDT", 25)
    assert new_edge.stats.epoch == 4 and new_edge.stats.received["heartbeat"] == 1
    assert new_edge.source.last_heard is not None and sum(new_edge.stats.hop.counts) == 1


def test_updates_publish_their_summary_bytes_and_state(edge: Edge) -> None:
    edge.take(upd(1, 2, summary(1.0)))
    edge.take(upd(1, 3, summary(2.0), symbol="BTCUSDT"))
    assert edge.served.summary("ETHBTC") == summary(1.0) and edge.served.summary("BTCUSDT") == summary(2.0)
    assert edge.served.state("ETHBTC") == state()
    assert edge.stats.received["update"] == 2


def test_an_older_sequence_of_a_symbol_is_dropped(edge: Edge) -> None:
    edge.take(upd(1, 5, summary(5.0)))
    edge.take(upd(1, 4, summary(4.0)))
    edge.take(upd(1, 5, summary(5.0)))  # the same one again (read stored, then from the channel)
    assert edge.served.summary("ETHBTC") == summary(5.0)
    assert edge.stats.dropped["old_sequence"] == 2
    edge.take(upd(1, 3, summary(3.0), symbol="BTCUSDT"))  # sequences are compared per symbol
    assert edge.served.summary("BTCUSDT") == summary(3.0)


def test_a_deposed_leaders_messages_are_dropped_once_a_newer_epoch_is_seen(edge: Edge) -> None:
    edge.take(upd(1, 50, summary(1.0)))
    edge.take(upd(2, 1, summary(2.0)))  # a lower sequence, but a newer epoch
    assert edge.stats.epoch == 2 and edge.stats.leader_changes == 1
    edge.take(upd(1, 51, summary(1.5)))
    edge.take(beat(1, 52))
    assert edge.served.summary("ETHBTC") == summary(2.0)
    assert edge.stats.dropped["old_epoch"] == 2


def test_a_summary_equal_to_the_one_served_is_not_published_again(edge: Edge) -> None:
    edge.take(upd(1, 2, summary(1.0)))
    published = edge.served.published_total
    edge.take(upd(2, 1, summary(1.0)))  # a new leader's first write repeats every symbol's
    assert edge.served.published_total == published
    edge.take(upd(2, 2, summary(2.0)))
    assert edge.served.published_total == published + 1


def test_an_update_with_no_summary_yet_sets_only_the_state(edge: Edge) -> None:
    edge.take(upd(1, 2, b""))
    assert edge.served.summary("ETHBTC") is None and edge.served.state("ETHBTC") == state()


def test_an_update_of_a_symbol_not_in_the_catalogue_is_dropped(edge: Edge) -> None:
    changes = edge.changes
    edge.take(upd(1, 9, summary(1.0), symbol="XRPEUR"))
    assert edge.stats.dropped["unknown_symbol"] == 1 and edge.changes == changes


@pytest.mark.parametrize(("data", "reason"), [
    (b"not protobuf \xff\xff", "malformed"),
    (upd(1, 9, b"\x09x"), "bad_summary"),
    (upd(1, 9, summary(1.0, levels=11)), "bad_summary"),  # deeper than the catalogue's 10
    (upd(2**53 + 1, 9, summary(1.0)), "out_of_range"),
    (upd(1, 2**62, summary(1.0)), "out_of_range"),
    (upd(1, 1 + MAX_SEQUENCE_JUMP + 1, summary(1.0)), "sequence_jump"),
    (beat(1, 2, depth=1, node="forger"), "not_lease_holder"),
], ids=["not protobuf", "a summary not protobuf", "a summary too deep", "an epoch out of range",
        "a sequence out of range", "a sequence jump", "a heartbeat from a forger"])  # the envelopes hold the time
def test_what_no_leader_sends_is_counted_under_its_reason_and_changes_nothing(edge: Edge, data: bytes,
                                                                              reason: str) -> None:
    changes, published = edge.changes, edge.served.published_total
    assert not edge.take(data)
    assert edge.stats.rejected == {reason: 1}
    assert (edge.served.summary("ETHBTC"), edge.served.depth, edge.changes) == (None, 10, changes)
    edge.take(upd(1, 3, summary(3.0)))  # the real leader's next update is still taken
    assert edge.served.summary("ETHBTC") == summary(3.0) and edge.served.published_total == published + 1


def test_the_sequence_jump_is_counted_from_the_epochs_newest_not_the_symbols_last(edge: Edge) -> None:
    """A quiet symbol among busy ones sees the leader's one sequence move by millions between its updates."""
    edge.take(upd(1, 2, summary(1.0), symbol="BTCUSDT"))
    for sequence in range(MAX_SEQUENCE_JUMP // 2, 3 * MAX_SEQUENCE_JUMP, MAX_SEQUENCE_JUMP // 2):
        assert edge.take(upd(1, sequence, summary(sequence), symbol="ETHBTC"))
    assert edge.take(upd(1, 3 * MAX_SEQUENCE_JUMP, summary(2.0), symbol="BTCUSDT"))
    assert edge.served.summary("BTCUSDT") == summary(2.0) and edge.stats.rejected == {}
    assert edge.take(upd(1, 4 * MAX_SEQUENCE_JUMP, summary(3.0)))  # exactly the bound: taken
    assert not edge.take(upd(1, 5 * MAX_SEQUENCE_JUMP + 1, summary(4.0)))
    assert edge.stats.rejected == {"sequence_jump": 1}


def test_a_catalogue_change_is_taken_only_from_the_leases_holder(edge: Edge, redis_client: redis.Redis) -> None:
    assert not edge.take(beat(1, 2, ("BTCUSDT",), node="not-the-leader"))
    assert not edge.take(beat(7, 2, ("BTCUSDT",)))  # the holder's node, but another epoch
    assert edge.served.symbols == ("ETHBTC", "BTCUSDT") and edge.stats.rejected == {"not_lease_holder": 2}
    assert edge.take(beat(1, 3, ("BTCUSDT",)))  # the holder's: taken
    assert edge.served.symbols == ("BTCUSDT",)
    assert edge.take(beat(1, 4, ("BTCUSDT",), node="not-the-leader"))  # no change: the lease is not read
    assert edge.stats.rejected == {"not_lease_holder": 2}


def test_a_flood_of_catalogue_changes_reads_the_lease_once_a_tick(edge: Edge, redis_client: redis.Redis) -> None:
    before = redis_client.info("commandstats")["cmdstat_getrange"]["calls"]
    started = time.monotonic()
    for sequence in range(2, 1002):
        edge.take(beat(1, sequence, ("BTCUSDT",), depth=sequence % 7 + 1, node="forger"))
    ticks = (time.monotonic() - started) / TICK
    calls = redis_client.info("commandstats")["cmdstat_getrange"]["calls"] - before
    assert edge.stats.rejected == {"not_lease_holder": 1000} and calls <= ticks + 1


def test_stored_values_do_not_count_as_hearing_the_leader_or_as_hop_delay(new_edge: Edge) -> None:
    new_edge.take(beat(1, 1), live=False)
    new_edge.take(upd(1, 2, summary(1.0)), live=False)
    assert new_edge.source.last_heard is None and sum(new_edge.stats.hop.counts) == 0
    assert new_edge.served.summary("ETHBTC") == summary(1.0)


def test_a_state_with_a_venue_in_step_that_does_not_list_the_symbol_is_refused(edge: Edge) -> None:
    edge.take(envelope.update(1, 9, "node", SymbolState("ETHBTC", ("binance",), ("kraken",)), summary(1.0)))
    assert edge.stats.rejected == {"malformed": 1} and edge.served.summary("ETHBTC") is None
