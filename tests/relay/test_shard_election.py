"""Shards (``--shard``) against a real Redis: each shard elects on keys of its own, every node names its shard in
the deployment's list, a node whose symbols another shard's leader already serves refuses to join, and the last
node of a shard to stop cleanly takes the shard out. Ticks are driven by hand (:meth:`BookNode.elect_once`)."""

from __future__ import annotations

import redis

from orderbook.relay import envelope
from orderbook.relay.keys import SHARD_TTL_MS, Keys
from tests.relay.forge import DEPTH, Node

A, B = Keys(shard="a"), Keys(shard="b")


def store_catalogue(client: redis.Redis, node: Node) -> None:
    """What the node's publisher writes first on leading: its catalogue (the tasks are not run here)."""
    beat = envelope.heartbeat(node.relay.stats.epoch, 1, node.relay.name, node.served.symbols, DEPTH)
    client.set(node.relay.keys.catalog, beat)


def test_each_shard_elects_its_own_leader_on_keys_of_its_own_and_the_default_shard_keeps_the_old_keys(
        nodes, redis_client) -> None:
    main, a, b = nodes(), nodes(keys=A, symbols=("BTCUSDT",)), nodes(keys=B, symbols=("ETHUSDT",))
    a_standby = nodes(keys=A, symbols=("BTCUSDT",))
    for node in (main, a, b, a_standby):
        node.relay.elect_once()
    assert [node.relay.leader for node in (main, a, b, a_standby)] == [True, True, True, False]
    assert main.relay.stats.epoch == a.relay.stats.epoch == b.relay.stats.epoch == 1
    assert redis_client.get("orderbook:leader").startswith(b"1 ")
    assert redis_client.get("orderbook:shard:a:leader") == f"1 {a.relay.name}".encode()
    assert redis_client.get("orderbook:shard:b:leader") == f"1 {b.relay.name}".encode()
    assert set(redis_client.hkeys("orderbook:shards")) == {b"main", b"a", b"b"}
    assert 0 < redis_client.pttl("orderbook:shards") <= SHARD_TTL_MS


def test_a_node_whose_symbols_another_shards_leader_serves_refuses_with_one_line_naming_both(
        nodes, redis_client) -> None:
    a = nodes(keys=A, symbols=("ETHBTC", "BTCUSDT"))
    a.relay.elect_once()
    store_catalogue(redis_client, a)
    b = nodes(keys=B, symbols=("ETHUSDT", "BTCUSDT"))
    b.relay.elect_once()
    assert not b.relay.leader and redis_client.get(B.lease) is None
    assert len(b.conflicts) == 1
    message = str(b.conflicts[0])
    assert message.startswith("--shard b: the symbols BTCUSDT are also shard a's") and "ETHUSDT" not in message
    assert b.relay.stats.rejected["shard_overlap"] == 1
    a.relay.elect_once()  # the shard registered first goes on
    assert a.relay.leader and not a.conflicts


def test_of_two_overlapping_shards_only_the_one_registered_later_refuses(nodes, redis_client) -> None:
    a, b = nodes(keys=A, symbols=("ETHBTC",)), nodes(keys=B, symbols=("ETHBTC",))
    a.relay.elect_once()
    b.relay.elect_once()  # both lead before either has a catalogue stored: they started together
    store_catalogue(redis_client, a)
    store_catalogue(redis_client, b)
    a.relay.elect_once()
    b.relay.elect_once()
    assert a.relay.leader and not a.conflicts
    assert len(b.conflicts) == 1 and b.relay.refused is not None


def test_a_shard_goes_from_the_list_when_its_last_node_stops_cleanly(nodes, redis_client) -> None:
    first, second = nodes(keys=A, symbols=("BTCUSDT",)), nodes(keys=A, symbols=("BTCUSDT",))
    for node in (first, second):
        node.relay.elect_once()
    first.relay.stop()
    assert redis_client.hexists(A.shards, "a") and redis_client.get(A.lease) is None
    second.relay.stop()
    assert not redis_client.hexists(A.shards, "a")


def test_a_list_of_shards_with_a_name_no_shard_has_is_counted_and_the_rest_is_read(nodes, redis_client) -> None:
    node = nodes(keys=A)
    redis_client.hset(A.shards, "bad name", "99999999999999 1")
    node.relay.elect_once()
    node.relay.elect_once()
    assert node.relay.leader and node.relay.stats.rejected["bad_shard"] == 1
