"""Redis without a single point of failure, as it runs: a master, a replica and three sentinels (real redis-server
and redis-sentinel processes), two book nodes publishing and two edges serving through
``redis+sentinel://...``, and a gRPC client on each edge. ``kill -9`` of the master: Sentinel promotes the
replica, and the edges' clients are back on the true book within the failover time and one lease, their streams
unbroken; also when the promoted replica lost the last writes (the lease and the epoch counter), in which case the
new leader's epoch is still newer than any seen and the old leader, unable to confirm its lease, publishes nothing
more."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orderbook.relay.keys import Keys
from orderbook.relay.timing import LEASE_TTL, REDIS_RETRY_CAP
from orderbook.simulator.process import SimulatorProcess
from tests.metrics_scrape import scrape
from tests.support.cluster import EdgeProcess, health, lifetime
from tests.support.sentinel import SentinelRedis
from tests.support.service import Book, BookReader, ServerProcess, wait_until_matches_truth
from tests.support.waiting import wait_until

START = 30.0
SETTLE = 5.0
RECONNECT = REDIS_RETRY_CAP + 0.5
"""Beyond the failover and the lease: a book node or an edge tries Redis again at most a second after its last
failed attempt, and half a second of room for a loaded machine."""
KEYS = Keys()


@dataclass
class Deployment:
    redis: SentinelRedis
    simulator: SimulatorProcess
    nodes: list[ServerProcess] = field(default_factory=list)
    edges: list[EdgeProcess] = field(default_factory=list)
    readers: list[BookReader] = field(default_factory=list)

    def leaders(self) -> list[ServerProcess]:
        return [node for node in self.nodes if scrape(node.metrics_port)("orderbook_relay_leader") == 1]

    def truth(self) -> Book:
        return Book.from_truth(self.simulator.control.truth(10)["merged"])

    def settle(self) -> None:
        self.simulator.control.pause()
        try:
            for reader in self.readers:
                wait_until_matches_truth(reader, self.truth, SETTLE)
        finally:
            self.simulator.control.resume()

    def logs(self) -> str:
        parts = [f"--- {process.log_path.name}\n{process.log()[-2500:]}" for process in (*self.nodes, *self.edges)]
        return "\n".join(parts) + "\n" + self.redis.logs()

    def stop(self) -> None:
        for process in (*self.edges, *self.nodes):
            process.terminate()
        self.redis.stop()


@pytest.fixture
def deployment(starts_processes: None, tmp_path: Path, simulator_factory, reader_factory) -> Iterator[Deployment]:
    redis = SentinelRedis(tmp_path / "redis")
    running = Deployment(redis, simulator_factory("--seed", "5", "--rate", "20"))
    with lifetime(running):
        for index in range(2):
            node = ServerProcess(running.simulator.urls, tmp_path / f"node-{index}.log", "--publish", redis.url,
                                 "--binance-snapshot-limit", "100")
            running.nodes.append(node)
            node.wait_serving(START)
            wait_until(running.leaders, START, "a leader")
        for index in range(2):
            running.edges.append(EdgeProcess(redis.url, tmp_path / f"edge-{index}.log"))
        for edge in running.edges:
            wait_until(lambda edge=edge: health(edge.target) == "SERVING", START, f"{edge.log_path.name} SERVING")
            running.readers.append(reader_factory(edge.target))
        for reader in running.readers:
            reader.wait_for(lambda book: book.exchanges() == {"binance", "bitstamp"}, START, "with both exchanges")
        yield running


def fail_over(deployment: Deployment, lose_writes: bool = False) -> tuple[float, float]:
    """``kill -9`` of the master; returns when it was sent and how long Sentinel took to name a new one. With
    ``lose_writes``, the replica has lost the lease and the epoch counter before it is promoted, as one that had not
    received the last writes would have."""
    old = deployment.redis.master_port()
    if lose_writes:  # before the kill: no book node can write to the replica's keys before they are lost
        deployment.redis.lose_on_the_replica(KEYS.lease, KEYS.epoch)
    killed = deployment.redis.kill_master()
    wait_until(lambda: deployment.redis.master_port() not in (None, old), 30, "Sentinel to promote the replica",
               interval=0.02)
    failover = time.monotonic() - killed
    print(f"Sentinel named a new master {failover:.2f} s after kill -9 of the old one")
    return killed, failover


def back_on_the_book(deployment: Deployment, killed: float, failover: float) -> None:
    bound = failover + LEASE_TTL + RECONNECT
    for reader in deployment.readers:
        reader.wait_for(lambda book, reader=reader: bool(reader.arrivals) and reader.arrivals[-1] > killed + 0.05,
                        bound, "after the failover")
    back = max(min(t for t in reader.arrivals if t > killed + 0.05) for reader in deployment.readers) - killed
    print(f"every edge's client had a new summary {back:.2f} s after kill -9 of the master")
    deployment.settle()
    assert all(reader.error is None for reader in deployment.readers), "an edge's client lost its stream"
    assert all(health(edge.target) == "SERVING" for edge in deployment.edges)


def one_leader(deployment: Deployment) -> list[ServerProcess]:
    """The leader, once no other node believes it leads (one that lost its lease sees it at its next tick, or once
    its lease has run out if it cannot reach Redis: its writes are fenced meanwhile)."""
    return wait_until(deployment.leaders, LEASE_TTL + 1.0, "one leader", accept=lambda leaders: len(leaders) == 1)


def test_kill_9_of_the_master_the_edges_clients_are_back_on_the_true_book_within_the_failover_and_a_lease(
        deployment: Deployment) -> None:
    killed, failover = fail_over(deployment)
    back_on_the_book(deployment, killed, failover)
    one_leader(deployment)


def test_a_new_master_that_lost_the_lease_and_the_epoch_still_gets_a_newer_epoch_and_the_old_leader_stops(
        deployment: Deployment) -> None:
    (old_leader,) = deployment.leaders()
    old_epoch = scrape(old_leader.metrics_port)("orderbook_relay_epoch")
    killed, failover = fail_over(deployment, lose_writes=True)
    back_on_the_book(deployment, killed, failover)
    (leader,) = one_leader(deployment)
    epoch = scrape(leader.metrics_port)("orderbook_relay_epoch")
    assert epoch > old_epoch, "a new leader's epoch is always newer than any seen"
    for edge in deployment.edges:
        wait_until(lambda edge=edge: scrape(edge.metrics_port)("orderbook_relay_epoch") == epoch, 5,
                   f"{edge.log_path.name} following epoch {epoch}")
    with deployment.redis.master_client() as client:
        assert client.get(KEYS.lease).split()[0] == str(int(epoch)).encode()
    # It could not confirm its lease: lost on the new master, or not renewed within the lease.
    assert f"no longer the leader of epoch {int(old_epoch)}: " in old_leader.log()
