"""The lease and the fenced writes against a real Redis: who leads, when a standby takes over, and that a deposed
leader cannot write. Ticks are driven by hand (:meth:`BookNode.elect_once`), so every step is deterministic; only
the lapse of a lease waits, for a lease made short here."""

from __future__ import annotations

import time

import gevent
import pytest
import redis

from orderbook.relay import envelope
from orderbook.relay.keys import PUBLISH, STORED_TTL_MS, Keys
from orderbook.symbol_state import SymbolState
from tests.relay.forge import LEASE, SYMBOLS, Node, summary
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

KEYS = Keys()


def lease_epoch(client: redis.Redis) -> int | None:
    value = client.get(KEYS.lease)
    return None if value is None else int(value.split()[0])


def test_the_first_node_leads_with_epoch_1_and_the_next_stands_by(nodes, redis_client) -> None:
    a, b = nodes(), nodes()
    a.relay.elect_once()
    b.relay.elect_once()
    assert (a.relay.leader, b.relay.leader) == (True, False)
    assert a.relay.stats.epoch == b.relay.stats.epoch == 1 == lease_epoch(redis_client)
    assert a.relay.stats.takeovers == 1 and b.relay.stats.takeovers == 0
    a.relay.elect_once()
    assert a.relay.stats.renewals == 1 and redis_client.pttl(KEYS.lease) > (LEASE - 0.2) * 1000


def test_a_lapsed_lease_goes_to_the_standby_with_a_newer_epoch_and_the_old_leader_steps_down(
        nodes, redis_client) -> None:
    a, b = nodes(), nodes()
    a.relay.elect_once()
    time.sleep(LEASE + 0.1)  # a hangs: no renewal
    b.relay.elect_once()
    assert b.relay.leader and b.relay.stats.epoch == 2 == lease_epoch(redis_client)
    a.relay.elect_once()  # a wakes up: its renewal is refused
    assert not a.relay.leader and a.relay.stats.epoch == 2


def test_a_write_with_a_lease_that_is_not_held_changes_nothing(redis_client) -> None:
    publish = redis_client.register_script(PUBLISH)
    redis_client.set(KEYS.lease, "2 new-leader")
    pubsub = redis_client.pubsub()
    pubsub.subscribe(KEYS.channel)
    wait_until(lambda: pubsub.get_message(timeout=0.1), 2, "the subscription confirmed")
    stale = envelope.update(1, 9, "old-leader", SymbolState("ETHBTC", (), ()), summary(1.0))
    written = publish(keys=[KEYS.lease, KEYS.latest, KEYS.catalog],
                      args=["1 old-leader", KEYS.channel, 60_000, 3_000, "1", "ETHBTC", stale])
    assert written == 0
    assert redis_client.exists(KEYS.latest, KEYS.catalog) == 0
    assert pubsub.get_message(timeout=0.3) is None
    pubsub.close()


def test_a_leader_with_nothing_in_step_hands_over_to_a_standby_that_has_something(nodes, redis_client) -> None:
    a, b = nodes(in_step=0), nodes(in_step=0)
    a.relay.elect_once()
    assert a.relay.leader  # nobody is in step anywhere (a cold start): someone must lead
    b.in_step = 2
    b.relay.elect_once()  # reports being ready; the lease is held
    assert not b.relay.leader
    a.relay.elect_once()
    assert not a.relay.leader and a.relay.stats.handovers == 1 and redis_client.get(KEYS.lease) is None
    a.relay.elect_once()  # a free lease, but a standby is better: a does not take it back
    assert not a.relay.leader
    b.relay.elect_once()
    assert b.relay.leader and lease_epoch(redis_client) == 2


def test_redis_restarted_empty_still_gives_a_newer_epoch(nodes, redis_client) -> None:
    a, b = nodes(), nodes()
    a.relay.elect_once()
    b.relay.elect_once()
    redis_client.flushall()  # what a restart without persistence leaves
    b.relay.elect_once()
    assert b.relay.leader and b.relay.stats.epoch == 2, "an epoch at or below one already seen was handed out"


def test_a_clean_stop_gives_the_lease_up_at_once(nodes, redis_client) -> None:
    a, b = nodes(), nodes()
    a.relay.elect_once()
    a.relay.stop()
    assert not a.relay.leader and redis_client.get(KEYS.lease) is None
    b.relay.elect_once()
    assert b.relay.leader


@pytest.mark.usefixtures("starts_processes")
def test_a_leader_that_loses_redis_steps_down_after_the_lease_and_leads_again_when_it_is_back(tmp_path) -> None:
    server = RedisServer(tmp_path).start()
    node = Node(server.url)
    try:
        node.relay.start()
        assert set(node.greenlets) == {"relay_election", "relay_publisher", "relay_heartbeat"}
        wait_until(lambda: node.relay.leader, 5, "leading", sleep=gevent.sleep)
        server.kill()
        wait_until(lambda: not node.relay.leader, LEASE + 3, "stepping down", sleep=gevent.sleep)
        assert not node.relay.stats.redis_connected and node.relay.stats.redis_errors >= 1
        server.start()  # the same port, empty
        wait_until(lambda: node.relay.leader, 10, "leading again", sleep=gevent.sleep)
        assert node.relay.stats.epoch == 2 and node.relay.stats.redis_connected
    finally:
        node.kill()
        server.stop()


def test_the_leader_publishes_the_catalogue_then_every_symbol_then_each_change(nodes, redis_client) -> None:
    redis_client.hset(KEYS.latest, "GONE", b"a symbol the last leader served")
    pubsub = redis_client.pubsub()
    pubsub.subscribe(KEYS.channel)
    a = nodes()
    a.served.publish_summary("ETHBTC", summary(1.0))
    a.relay.start()
    wait_until(lambda: a.relay.leader, 5, "a leading", sleep=gevent.sleep)
    received: list[envelope.Update | envelope.Heartbeat] = []

    def until(what, accept) -> None:
        def probe() -> bool:
            message = pubsub.get_message(timeout=0.01)
            if message is not None and message["type"] == "message":
                received.append(envelope.read(message["data"]))
            return any(accept(item) for item in received)
        wait_until(probe, 5, what, interval=0.01, sleep=gevent.sleep)

    until("the first write", lambda item: isinstance(item, envelope.Update) and item.symbol == "BTCUSDT")
    assert isinstance(received[0], envelope.Heartbeat) and received[0].symbols == SYMBOLS
    first = [item for item in received if isinstance(item, envelope.Update)]
    assert [(item.symbol, item.summary) for item in first] == [("ETHBTC", summary(1.0)), ("BTCUSDT", b"")]
    assert sorted(redis_client.hkeys(KEYS.latest)) == [b"BTCUSDT", b"ETHBTC"]  # the last leader's "GONE" went
    a.served.publish_summary("ETHBTC", summary(2.0))
    until("the change", lambda item: isinstance(item, envelope.Update) and item.summary == summary(2.0))
    until("a heartbeat after the first write", lambda item: isinstance(item, envelope.Heartbeat) and item.sequence > 3)
    sequences = [item.sequence for item in received]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    assert {item.epoch for item in received} == {1}
    stored = envelope.read(redis_client.hget(KEYS.latest, "ETHBTC"))
    assert isinstance(stored, envelope.Update) and stored.summary == summary(2.0)
    assert 0 < redis_client.pttl(KEYS.catalog) <= 3_000 and 0 < redis_client.pttl(KEYS.latest) <= STORED_TTL_MS
    assert sorted(redis_client.keys("*")) == [b"orderbook:catalog", b"orderbook:epoch", b"orderbook:latest",
                                              b"orderbook:leader", b"orderbook:nodes", b"orderbook:shards"]
    assert a.relay.stats.published["update"] >= 3 and a.relay.stats.published["heartbeat"] >= 2
    pubsub.close()


def test_the_password_in_the_url_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    node = Node("redis://:s3cret-pass@127.0.0.1:1/0")  # nothing listens there
    try:
        with caplog.at_level("INFO"):
            node.relay.start()
            wait_until(lambda: node.relay.stats.redis_errors > 0, 5, "a failed attempt", sleep=gevent.sleep)
        assert "redis://:***@127.0.0.1:1/0" in caplog.text and "unreachable" in caplog.text
        assert "s3cret" not in caplog.text
    finally:
        node.kill()


def test_a_node_that_missed_an_epoch_learns_it_from_the_others_reports_and_never_hands_it_out_again(
        nodes, redis_client) -> None:
    """A Redis that lost the lease and the counter (a promoted replica without the last writes), and a standby
    that never saw the epoch the leader took: the standby's next lease is still newer."""
    a, b = nodes(), nodes()
    a.relay.elect_once()
    b.relay.elect_once()
    redis_client.delete(KEYS.lease, KEYS.epoch)
    a.relay.elect_once()  # the lease was lost: a steps down
    a.relay.elect_once()  # and takes epoch 2 where b does not see it
    assert a.relay.stats.epoch == 2 and b.relay.stats.epoch == 1
    redis_client.delete(KEYS.lease, KEYS.epoch)  # lost again, with the counter: only a's report says 2 now
    a.relay.elect_once()
    a.kill()
    b.relay.elect_once()
    assert b.relay.leader and b.relay.stats.epoch == 3 == lease_epoch(redis_client)
