"""An edge against whatever someone else publishes or stores in Redis, while a leader goes on publishing: the
edge's source runs its real loop (:meth:`RedisSource.run`) into books whose streams the test reads, the leader
publishes from a thread, and a forger writes beside it. Every bad value is refused and counted under its reason;
what the clients see stays the leader's book, and no stream ends or starves for it."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import gevent
import pytest
import redis

from orderbook.proto import orderbook_pb2
from orderbook.relay import envelope
from orderbook.relay.keys import Keys
from orderbook.relay.metrics import EdgeStats
from orderbook.relay.source import MAX_SEQUENCE_JUMP, RedisSource
from orderbook.relay.timing import FOLLOWED_SILENCE, HEARTBEAT_INTERVAL, SOURCE_TIMEOUT
from orderbook.serving.symbols import ServedSymbols, Unavailable
from tests.relay.forge import DEPTH, Leader, Node, price_of, state, summary
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

KEYS = Keys()
KEY = b"the deployment's secret"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Stream:
    """A client's stream of the edge's books, read in a greenlet: every summary with when it came."""

    def __init__(self, served: ServedSymbols, symbol: str, depth: int) -> None:
        self.arrivals: list[tuple[float, bytes]] = []
        self.ended: Exception | None = None
        self.active = True
        self._greenlet = gevent.spawn(self._read, served, symbol, depth)

    def _read(self, served: ServedSymbols, symbol: str, depth: int) -> None:
        try:
            for data in served.stream(symbol, depth, lambda: self.active):
                self.arrivals.append((time.monotonic(), data))
        except Unavailable as unavailable:
            self.ended = unavailable

    def prices_after(self, moment: float) -> list[float]:
        return [price_of(data) for at, data in self.arrivals if at > moment]

    def close(self) -> None:
        self.active = False
        self._greenlet.kill()


class FollowingEdge:
    """An edge's source and books, which serve once a catalogue is learned; :meth:`follow` runs the source's loop
    in a greenlet."""

    def __init__(self, url: str, key: bytes | None = None) -> None:
        self.served = ServedSymbols((), 1)
        self.stats = EdgeStats()
        self.source = RedisSource(url, self.served, self.stats, on_change=self.served.resume, key=key)
        self._greenlet: gevent.Greenlet | None = None
        self.streams: list[Stream] = []

    def follow(self) -> FollowingEdge:
        self._greenlet = gevent.spawn(self.source.run)
        return self

    def wait(self, what: str, condition, timeout: float = 5.0):
        return wait_until(condition, timeout, what, interval=0.01, sleep=gevent.sleep)

    def price(self, symbol: str = "ETHBTC") -> float | None:
        data = self.served.summary(symbol) if symbol in self.served.symbols else None
        return None if data is None else price_of(data)

    def stream(self, symbol: str = "ETHBTC", depth: int = DEPTH) -> Stream:
        self.streams.append(Stream(self.served, symbol, depth))
        return self.streams[-1]

    def close(self) -> None:
        for stream in self.streams:
            stream.close()
        if self._greenlet is not None:
            self._greenlet.kill()


class PublishingLeader:
    """The leader of epoch 1, publishing a new ETHBTC summary every ``interval`` (its price counting up) and a
    heartbeat every half second, from a thread of its own."""

    def __init__(self, server: RedisServer, interval: float = 0.02, key: bytes | None = None) -> None:
        self._client = server.client()
        self.leader = Leader(self._client, key=key).hold()
        self.price = 0
        self._interval = interval
        self._stopped = threading.Event()
        self.leader.heartbeat()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        beat_at = time.monotonic()
        while not self._stopped.wait(self._interval):
            self.price += 1
            self.leader.update(self.price)
            if time.monotonic() - beat_at >= HEARTBEAT_INTERVAL:
                self.leader.heartbeat()
                beat_at = time.monotonic()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self._client.close()


@pytest.fixture
def leader(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[PublishingLeader]:
    publishing = PublishingLeader(redis_server)
    yield publishing
    publishing.stop()


@pytest.fixture
def edge(redis_server: RedisServer, leader: PublishingLeader) -> Iterator[FollowingEdge]:
    """An edge serving the leader's book, ETHBTC's price moving."""
    following = FollowingEdge(redis_server.url).follow()
    following.wait("the leader's book", lambda: (following.price() or 0) > 0)
    yield following
    following.close()


def forged_update(epoch: int, sequence: int, summary_bytes: bytes, node: str = "forger") -> bytes:
    return envelope.update(epoch, sequence, node, state(), summary_bytes)


def back_to_the_leader(edge: FollowingEdge, leader: PublishingLeader, stream: Stream, since: float,
                       timeout: float) -> None:
    """Until the edge's book, and ``stream``, show a summary the leader published after ``since``."""
    price = leader.price
    edge.wait("the leader's summaries again", lambda: (edge.price() or 0) > price and stream.prices_after(since)
              and max(stream.prices_after(since)) > price, timeout)


# -- epochs and sequences -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("epoch", [2**63, 2**64 - 1, 2**53 + 1])
def test_a_huge_epoch_on_the_channel_and_in_the_lease_is_refused(
        edge: FollowingEdge, leader: PublishingLeader, redis_client: redis.Redis, epoch: int) -> None:
    stream = edge.stream()
    redis_client.set(KEYS.lease, f"{epoch} forger")
    forged_at = time.monotonic()
    redis_client.publish(KEYS.channel, envelope.heartbeat(epoch, 1, "forger", ["ETHBTC", "BTCUSDT"], DEPTH))
    redis_client.publish(KEYS.channel, forged_update(epoch, 2, summary(-1.0)))
    back_to_the_leader(edge, leader, stream, forged_at, SOURCE_TIMEOUT + 1)
    edge.wait("both refused", lambda: edge.stats.rejected == {"out_of_range": 2})
    assert edge.stats.epoch == 1 and edge.stats.leader_changes == 0 and -1.0 not in stream.prices_after(forged_at)
    assert stream.ended is None


def test_a_forged_future_epoch_in_range_costs_at_most_the_silence_bound(
        edge: FollowingEdge, leader: PublishingLeader, redis_client: redis.Redis) -> None:
    """A plausible epoch cannot be told from a new leader's by itself: the edge follows it, and drops what the
    real leader sends as a deposed leader's, until the forged epoch has said nothing for the silence bound; then it
    follows the real leader again, and reads every symbol's stored latest, before any stream would end."""
    stream = edge.stream()
    forged_at = time.monotonic()
    redis_client.publish(KEYS.channel, forged_update(2**52, 1, summary(-1.0)))
    edge.wait("the forged summary", lambda: edge.price() == -1.0)
    back_to_the_leader(edge, leader, stream, forged_at, SOURCE_TIMEOUT + 1)
    back = time.monotonic() - forged_at
    assert FOLLOWED_SILENCE <= back < SOURCE_TIMEOUT + 1
    assert edge.stats.epoch == 1 and edge.stats.leader_changes == 2 and edge.stats.dropped["old_epoch"] > 0
    assert stream.ended is None


@pytest.mark.parametrize(("sequence", "reason"), [(2**62, "out_of_range"), (1 + MAX_SEQUENCE_JUMP, "sequence_jump")])
def test_a_sequence_no_leader_reaches_does_not_freeze_the_symbol(
        edge: FollowingEdge, leader: PublishingLeader, redis_client: redis.Redis, sequence: int, reason: str) -> None:
    stream = edge.stream()
    newest = leader.price * 2 + 10  # the leader's sequence is below: one update a price, a heartbeat now and then
    forged_at = time.monotonic()
    redis_client.publish(KEYS.channel, forged_update(1, newest + sequence, summary(-1.0), node="leader"))
    back_to_the_leader(edge, leader, stream, forged_at, 2)
    assert edge.stats.rejected == {reason: 1} and -1.0 not in stream.prices_after(forged_at)


# -- summaries and catalogues ---------------------------------------------------------------------------------------

def test_summary_bytes_that_are_no_summary_leave_a_shallow_stream_streaming(
        edge: FollowingEdge, leader: PublishingLeader, redis_client: redis.Redis) -> None:
    """A stream shallower than the catalogue's depth is cut from each summary: once, bytes that were no summary
    killed the edge's source there."""
    shallow, full = edge.stream(depth=2), edge.stream()
    edge.wait("the shallow stream's first summary", lambda: shallow.arrivals)
    asks_first = (orderbook_pb2.Summary(asks=[orderbook_pb2.Level(price=2.0)]).SerializeToString()
                  + orderbook_pb2.Summary(bids=[orderbook_pb2.Level(price=1.0)]).SerializeToString())
    forged_at = time.monotonic()
    for data in (b"\x09x", b"no summary at all", asks_first, summary(-1.0, levels=DEPTH + 1)):
        redis_client.publish(KEYS.channel, forged_update(1, leader.price * 2 + 10, data, node="leader"))
    back_to_the_leader(edge, leader, shallow, forged_at, 2)
    edge.wait("all four refused", lambda: edge.stats.rejected == {"bad_summary": 4})
    cut = orderbook_pb2.Summary.FromString(shallow.arrivals[-1][1])
    assert len(cut.bids) == len(cut.asks) == 2 and full.prices_after(forged_at)
    assert shallow.ended is None and full.ended is None


def test_a_depth_change_from_other_than_the_leases_holder_ends_no_stream(
        edge: FollowingEdge, leader: PublishingLeader, redis_client: redis.Redis) -> None:
    """Once, one heartbeat at depth 1 ended every stream on every edge."""
    stream = edge.stream()
    forged_at = time.monotonic()
    for node in ("forger", "leader"):  # the leader's name, but not its epoch
        redis_client.publish(KEYS.channel, envelope.heartbeat(1 if node == "forger" else 7, leader.price * 2 + 10,
                                                              node, ["ETHBTC", "BTCUSDT"], 1))
    back_to_the_leader(edge, leader, stream, forged_at, 2)
    edge.wait("both refused", lambda: edge.stats.rejected == {"not_lease_holder": 2})
    assert edge.served.depth == DEPTH and stream.ended is None


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("count", [1001, 120_000])
def test_an_oversized_catalogue_is_refused_and_nothing_of_it_kept(
        edge: FollowingEdge, leader: PublishingLeader, redis_client: redis.Redis, count: int) -> None:
    """Once, a heartbeat of 120,000 symbols cost an edge 115 MB, kept."""
    stream = edge.stream()
    beat = envelope.heartbeat(1, leader.price * 2 + 10, "leader", [f"Z{index:X}" for index in range(count)], DEPTH)
    before = resident_bytes()
    forged_at = time.monotonic()
    for _ in range(5):
        redis_client.publish(KEYS.channel, beat)
    edge.wait("all five refused", lambda: edge.stats.rejected == {"bad_catalogue": 5})
    back_to_the_leader(edge, leader, stream, forged_at, 2)
    assert resident_bytes() - before < 30 * 2**20
    assert edge.served.symbols == ("ETHBTC", "BTCUSDT") and stream.ended is None


FLOOD = """
import sys
import redis
from orderbook.relay import envelope
port, channel, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
kinds = [
    envelope.heartbeat(1, 5, "leader", ["ETHBTC", "BTCUSDT"], 10),  # valid: the leader's catalogue
    b"\\x08\\x01 garbage \\xff",  # malformed
    envelope.heartbeat(2**63, 5, "leader", ["ETHBTC", "BTCUSDT"], 10),  # out_of_range
    envelope.heartbeat(1, 5, "forger", ["XRPEUR"], 1),  # not_lease_holder
]
client = redis.Redis(host="127.0.0.1", port=port)
with client.pipeline(transaction=False) as pipe:
    for index in range(count):
        pipe.publish(channel, kinds[index % 4])
        if index % 1000 == 999:
            pipe.execute()
    pipe.execute()
"""


def test_a_flood_on_the_channel_never_starves_the_streams(
        edge: FollowingEdge, leader: PublishingLeader, redis_server: RedisServer) -> None:
    """Once, 200,000 valid heartbeats left every client of an edge without a summary for 23 s: a message waiting on
    the socket never blocks, so the source never let the streams run. Measured: the gaps of a stream, while the
    leader goes on publishing through the flood."""
    count = 100_000
    stream = edge.stream()
    started = time.monotonic()
    flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(redis_server.port), KEYS.channel, str(count)],
                             cwd=REPO, stderr=subprocess.PIPE)
    edge.wait("the flood published", lambda: flood.poll() is not None, timeout=120)  # the hub runs meanwhile
    assert flood.returncode == 0, flood.stderr.read().decode() if flood.stderr else ""
    each = count // 4
    edge.wait("the whole flood taken", lambda: sum(edge.stats.rejected.values()) == 3 * each, timeout=120)
    ended = time.monotonic()
    back_to_the_leader(edge, leader, stream, ended, 2)
    moments = [started, *(at for at, _ in stream.arrivals if started < at < ended), ended]
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert max(gaps) < 1.0, f"a stream waited {max(gaps):.2f} s during the flood"
    assert edge.stats.rejected == {"malformed": each, "out_of_range": each, "not_lease_holder": each}
    assert edge.stats.redis_errors == 0 and stream.ended is None


# -- the key ----------------------------------------------------------------------------------------------------------

def test_an_edge_with_the_key_takes_only_what_is_signed_with_it(redis_server: RedisServer,
                                                                 redis_client: redis.Redis) -> None:
    signed = PublishingLeader(redis_server, key=KEY)
    edge = FollowingEdge(redis_server.url, key=KEY).follow()
    try:
        edge.wait("the signed book", lambda: (edge.price() or 0) > 0)
        stream = edge.stream()
        forged_at = time.monotonic()
        for data in (forged_update(1, signed.price * 2 + 10, summary(-1.0), node="leader"),  # unsigned
                     envelope.update(1, signed.price * 2 + 11, "leader", state(), summary(-2.0), b"another secret"),
                     envelope.update(1, signed.price * 2 + 12, "leader", state(), summary(-3.0), KEY)[:-3] + b"abc",
                     envelope.heartbeat(1, signed.price * 2 + 13, "leader", ["XRPEUR"], 1)):
            redis_client.publish(KEYS.channel, data)
        back_to_the_leader(edge, signed, stream, forged_at, 2)
        edge.wait("all four refused", lambda: edge.stats.rejected == {"bad_mac": 4})
        assert min(stream.prices_after(forged_at)) > 0 and edge.served.symbols == ("ETHBTC", "BTCUSDT")
    finally:
        edge.close()
        signed.stop()


def published_by(node: Node, client: redis.Redis, count: int) -> list[bytes]:
    """The first ``count`` envelopes ``node`` publishes once started (its first write, then heartbeats)."""
    pubsub = client.pubsub()
    pubsub.subscribe(KEYS.channel)
    wait_until(lambda: pubsub.get_message(timeout=0.01), 2, "the subscription", sleep=gevent.sleep)
    node.relay.start()
    published: list[bytes] = []

    def enough() -> bool:
        message = pubsub.get_message(timeout=0.01)
        if message is not None and message["type"] == "message":
            published.append(message["data"])
        return len(published) >= count

    wait_until(enough, 5, f"{count} envelopes", interval=0.01, sleep=gevent.sleep)
    pubsub.close()
    return published


def test_a_node_and_an_edge_with_different_keys_share_nothing(nodes: Callable[..., Node], redis_server: RedisServer,
                                                              redis_client: redis.Redis) -> None:
    node = nodes(key=b"the node's secret")
    node.served.publish_summary("ETHBTC", summary(7.0))
    envelopes = published_by(node, redis_client, 5)  # the catalogue, two updates, two heartbeats
    stranger, member = FollowingEdge(redis_server.url, key=KEY), FollowingEdge(redis_server.url, b"the node's secret")
    for data in envelopes:
        stranger.source.take(data, live=True)
        member.source.take(data, live=True)
    assert stranger.stats.rejected == {"bad_mac": 5} and stranger.served.symbols == ()
    assert member.stats.rejected == {} and member.price() == 7.0


def test_a_node_signs_and_an_edge_without_a_key_still_reads_it(nodes: Callable[..., Node], redis_server: RedisServer,
                                                               redis_client: redis.Redis) -> None:
    """A key can be rolled out book nodes first: an edge without one ignores the MAC."""
    node = nodes(key=KEY)
    node.served.publish_summary("ETHBTC", summary(7.0))
    edge = FollowingEdge(redis_server.url)
    for data in published_by(node, redis_client, 3):
        edge.source.take(data, live=True)
    assert edge.stats.rejected == {} and edge.price() == 7.0
