"""A book node against whatever someone else left in Redis: a lease or an epoch counter no book node wrote, and a
second deployment on the same keys. Each bad value is refused, counted once and survived: the node never crashes,
never takes a lease before it expires, never computes an epoch above 2^53, and never publishes a catalogue over
another deployment's. Ticks are driven by hand (:meth:`BookNode.elect_once`) unless the test is about the tasks."""

from __future__ import annotations

from collections.abc import Callable

import gevent
import pytest
import redis

from orderbook.relay import envelope
from orderbook.relay.keys import MAX_EPOCH, Keys
from orderbook.relay.redis_url import redacted
from tests.relay.forge import LEASE, Node
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

KEYS = Keys()
TICKS = 4
"""Ticks a test drives while a bad value stands: it must be counted once, not at each read."""


def ticked_until_leading(node: Node, timeout: float = LEASE + 3) -> int:
    """Tick ``node`` until it leads (the bad lease lapsed); its epoch."""
    def leading() -> bool:
        node.relay.elect_once()
        return node.relay.leader

    wait_until(leading, timeout, "the node to lead once the lease lapsed", interval=0.05)
    return node.relay.stats.epoch


@pytest.mark.parametrize("lease", [b"garbage", b"", b"18446744073709551615 x", b"-5 x", b"9007199254740993 x",
                                   b"0 x", b"1 two words", b"12", b"7 " + b"x" * 600, b"\xff\xfe \xfd"])
def test_a_lease_no_node_wrote_is_held_by_someone_unknown_until_it_expires(
        nodes: Callable[..., Node], redis_client: redis.Redis, lease: bytes) -> None:
    node = nodes()
    redis_client.set(KEYS.lease, lease, px=int(LEASE * 1000))
    for _ in range(TICKS):
        node.relay.elect_once()
        assert not node.relay.leader
    assert redis_client.get(KEYS.lease) == lease  # never taken over before it expires
    assert node.relay.stats.rejected == {"bad_lease": 1} and node.relay.stats.epoch == 0
    assert ticked_until_leading(node) == 1 and redis_client.get(KEYS.epoch) == b"1"


def test_a_lease_claiming_epoch_2_to_the_64_makes_no_zombie_leader(nodes: Callable[..., Node],
                                                                    redis_client: redis.Redis) -> None:
    """Seen once: the lease's epoch overflowed the scripts, the publisher and heartbeat tasks died, and the node
    renewed a lease it could not publish under. Now it is refused, and once it lapses the node leads and publishes
    under a sane epoch, every task alive."""
    redis_client.set(KEYS.lease, f"{2**64 - 1} x", px=int(LEASE * 1000))
    node = nodes()
    pubsub = redis_client.pubsub()
    pubsub.subscribe(KEYS.channel)
    node.relay.start()
    wait_until(lambda: node.relay.leader, LEASE + 3, "leading once the lease lapsed", sleep=gevent.sleep)
    beats: list[envelope.Heartbeat] = []

    def heartbeats_after_the_first_write() -> bool:
        message = pubsub.get_message(timeout=0.01)
        if message is not None and message["type"] == "message":
            item = envelope.read(message["data"])
            if isinstance(item, envelope.Heartbeat):
                beats.append(item)
        return len(beats) >= 2

    wait_until(heartbeats_after_the_first_write, 5, "the leader's heartbeats", interval=0.01, sleep=gevent.sleep)
    assert {beat.epoch for beat in beats} == {1} and node.relay.stats.epoch == 1
    assert node.relay.stats.rejected["bad_lease"] == 1
    assert [name for name, task in node.greenlets.items() if task.dead] == []
    pubsub.close()


@pytest.mark.parametrize("counter", [b"garbage", b"18446744073709551615", b"-3", b"1.5", b"0x10", b" 5",
                                     str(MAX_EPOCH).encode()])
def test_an_epoch_counter_that_is_not_an_epoch_is_never_led_on(nodes: Callable[..., Node], redis_client: redis.Redis,
                                                               counter: bytes) -> None:
    redis_client.set(KEYS.epoch, counter)
    node = nodes()
    for _ in range(TICKS):
        node.relay.elect_once()
    assert not node.relay.leader and redis_client.get(KEYS.lease) is None and redis_client.get(KEYS.epoch) == counter
    assert node.relay.stats.rejected == {"bad_epoch_counter": 1} and node.relay.stats.epoch == 0
    redis_client.delete(KEYS.epoch)
    node.relay.elect_once()
    assert node.relay.leader and node.relay.stats.epoch == 1


def test_the_last_epoch_is_never_gone_past(nodes: Callable[..., Node], redis_client: redis.Redis) -> None:
    """A lease may claim the largest epoch there is: believed, but then no node can take a newer one, and none
    leads on an epoch above it."""
    redis_client.set(KEYS.lease, f"{MAX_EPOCH} someone", px=int(LEASE * 1000))
    node = nodes()
    node.relay.elect_once()
    assert node.relay.stats.epoch == MAX_EPOCH and node.relay.stats.rejected == {}

    def refused() -> bool:
        node.relay.elect_once()
        return node.relay.stats.rejected["bad_epoch_counter"] == 1

    wait_until(refused, LEASE + 3, "the lease to lapse and the next epoch to be refused", interval=0.05)
    assert not node.relay.leader and redis_client.get(KEYS.lease) is None


# -- one deployment per key space ----------------------------------------------------------------------------------

OTHER_SYMBOLS = ("BTCUSDT", "ETHBTC")
"""The same symbols in another order: another default symbol, so another catalogue."""


def leading(node: Node) -> Node:
    """``node`` started: it leads and its catalogue is stored."""
    node.relay.start()
    wait_until(lambda: node.relay.leader, 5, "leading", sleep=gevent.sleep)
    return node


def catalogue_of(client: redis.Redis, node: Node, keys: Keys = KEYS) -> bool:
    stored = client.get(keys.catalog)
    return isinstance(stored, bytes) and envelope.read(stored).node == node.relay.name


def test_a_node_of_another_catalogue_refuses_to_join_and_the_deployment_sees_it(
        nodes: Callable[..., Node], redis_server: RedisServer, redis_client: redis.Redis) -> None:
    first = leading(nodes())
    wait_until(lambda: catalogue_of(redis_client, first), 5, "the leader's catalogue", sleep=gevent.sleep)
    second = nodes(symbols=OTHER_SYMBOLS)
    second.relay.elect_once()
    (conflict,) = second.conflicts
    line = str(conflict)
    assert "\n" not in line and redacted(redis_server.url) in line and "key prefix orderbook" in line
    assert "--symbol ETHBTC,BTCUSDT --depth 10" in line and "--symbol BTCUSDT,ETHBTC --depth 10" in line
    assert second.relay.refused == line and not second.relay.leader
    assert second.relay.stats.rejected == {"other_deployment": 1}
    second.relay.elect_once()  # refused for good: no second report, no lease taken
    assert len(second.conflicts) == 1
    wait_until(lambda: first.relay.stats.rejected["other_deployment"] == 1, 5, "the leader to count the refused node",
               sleep=gevent.sleep)
    assert first.relay.leader


def test_a_node_of_the_same_catalogue_stands_by_as_ever(nodes: Callable[..., Node], redis_client: redis.Redis) -> None:
    first = leading(nodes())
    wait_until(lambda: catalogue_of(redis_client, first), 5, "the leader's catalogue", sleep=gevent.sleep)
    second = nodes()
    for _ in range(TICKS):
        second.relay.elect_once()
    assert second.conflicts == [] and second.relay.refused is None and not second.relay.leader
    assert first.relay.stats.rejected == second.relay.stats.rejected == {}


def test_another_prefix_is_another_deployment_beside_it(nodes: Callable[..., Node], redis_client: redis.Redis) -> None:
    other = Keys("second-deployment")
    first = leading(nodes())
    second = leading(nodes(symbols=OTHER_SYMBOLS, keys=other))
    wait_until(lambda: catalogue_of(redis_client, second, other) and catalogue_of(redis_client, first), 5,
               "both catalogues", sleep=gevent.sleep)
    assert first.relay.leader and second.relay.leader
    assert first.conflicts == second.conflicts == [] and first.relay.stats.rejected == {}
    lease = redis_client.get(other.lease)
    assert isinstance(lease, bytes) and lease.decode().endswith(second.relay.name)


def test_a_standby_never_takes_over_from_a_leader_of_another_catalogue_that_appeared_later(
        nodes: Callable[..., Node], redis_client: redis.Redis) -> None:
    """Its own leader goes; another deployment's node takes the lease first: the standby refuses at its next
    tick instead of ever leading."""
    first, standby = nodes(), nodes()
    first.relay.elect_once()
    standby.relay.elect_once()
    first.relay.stop()
    intruder = leading(nodes(symbols=OTHER_SYMBOLS))
    wait_until(lambda: catalogue_of(redis_client, intruder), 5, "the intruder's catalogue", sleep=gevent.sleep)
    standby.relay.elect_once()
    assert len(standby.conflicts) == 1 and not standby.relay.leader
    assert "--symbol BTCUSDT,ETHBTC --depth 10" in str(standby.conflicts[0])


def test_a_stored_catalogue_no_leader_wrote_refuses_no_one(nodes: Callable[..., Node],
                                                            redis_client: redis.Redis) -> None:
    """Only the catalogue of the lease's holder counts: garbage, or another node's, is not a deployment."""
    redis_client.set(KEYS.lease, "3 holder", px=int(LEASE * 1000))
    node = nodes()
    for catalog in (b"garbage", envelope.heartbeat(3, 9, "not-the-holder", ["XRPEUR"], 10)):
        redis_client.set(KEYS.catalog, catalog)
        node.relay.elect_once()
    assert node.conflicts == [] and node.relay.stats.rejected == {"malformed": 1}
    assert ticked_until_leading(node) == 4


def test_with_a_key_a_forged_catalogue_refuses_no_one(nodes: Callable[..., Node], redis_client: redis.Redis) -> None:
    """Without the key, writing Redis is not enough to make a book node exit."""
    redis_client.set(KEYS.lease, "3 holder", px=int(LEASE * 1000))
    redis_client.set(KEYS.catalog, envelope.heartbeat(3, 9, "holder", ["XRPEUR"], 10))
    node = nodes(key=b"the deployment's secret")
    node.relay.elect_once()
    assert node.conflicts == [] and node.relay.stats.rejected == {"bad_mac": 1}
