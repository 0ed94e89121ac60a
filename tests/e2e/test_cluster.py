"""Beyond one machine, as it runs: the simulator, a real redis-server, two book nodes publishing through it
(``--publish``), two edges serving from it (``bin/run-edge``) and gRPC clients, all separate processes on
loopback. What the clients of the edges receive is checked against the simulator's truth after each fault."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from orderbook.relay.metrics import EDGE_REJECTIONS
from orderbook.relay.timing import LEASE_TTL, SOURCE_TIMEOUT
from tests.metrics_scrape import Samples
from tests.support.cluster import Cluster, health
from tests.support.processes import stop_process
from tests.support.service import REPO_ROOT, Book, BookReader, Row, symbol_states, wait_until_matches_truth
from tests.support.waiting import wait_until

BOTH = {"binance", "bitstamp"}
SETTLE = 5.0


@pytest.fixture
def cluster(tmp_path, simulator_factory, reader_factory) -> Iterator[Cluster]:
    """Two book nodes (the first started leads), two edges, each edge with a reader, all in step."""
    simulator = simulator_factory("--seed", "5", "--rate", "100", "--levels", "100")
    cluster = Cluster(tmp_path, simulator)
    with cluster.running():
        first = cluster.start_node()
        first.wait_serving()
        wait_until(cluster.leader, 10, "a leader")
        cluster.start_node().wait_serving()
        for _ in range(2):
            cluster.start_edge()
        for edge in cluster.edges:
            wait_until(lambda edge=edge: health(edge.target) == "SERVING", 10, f"{edge.log_path.name} SERVING")
        yield cluster


def readers_on_edges(cluster: Cluster, reader_factory: Callable[..., BookReader]) -> list[BookReader]:
    readers = [reader_factory(edge.target) for edge in cluster.edges]
    for reader in readers:
        reader.wait_for(lambda book: book.exchanges() == BOTH, 10, "with both exchanges")
    return readers


def settle(cluster: Cluster, *readers: BookReader) -> Book:
    """Pause the simulator: every reader must then hold the truth."""
    cluster.simulator.control.pause()
    return [wait_until_matches_truth(reader, cluster.truth, SETTLE) for reader in readers][-1]


def dropped(edge: Samples) -> float:
    return sum(edge("orderbook_relay_dropped_total", reason=reason)
               for reason in ("old_epoch", "old_sequence", "unknown_symbol"))


def test_the_clients_of_every_edge_receive_the_truth_and_a_new_client_gets_it_at_once_symbols_and_reflection(
        cluster: Cluster, reader_factory) -> None:
    # On connecting, an edge subscribes and then reads what is stored: a message published in between comes twice,
    # and its channel copy is dropped as old (orderbook/relay/source.py), the likelier the busier the machine.
    dropped_on_connecting = dropped(cluster.metrics(cluster.edges[0]))
    readers = readers_on_edges(cluster, reader_factory)
    received = [reader.received for reader in readers]
    wait_until(lambda: all(r.received > n + 50 for r, n in zip(readers, received)), 20, "traffic through the edges")
    settled = settle(cluster, *readers)
    assert len(settled.bids) == len(settled.asks) == 10 and settled.exchanges() == BOTH
    late = reader_factory(cluster.edges[1].target, "ETHBTC", 3)
    assert late.wait_for(lambda book: True, 5, "at all") == Book(settled.spread, settled.bids[:3], settled.asks[:3])
    leader = cluster.leader()
    assert leader is cluster.nodes[0]
    assert cluster.metrics(cluster.nodes[1])("orderbook_relay_published_total", kind="update") == 0  # stands by
    assert symbol_states(cluster.edges[0].target) == {"ETHBTC": (("binance", "bitstamp"), ("binance", "bitstamp"))}
    with grpc.insecure_channel(cluster.edges[1].target) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"orderbook.OrderbookAggregator", "orderbook.OrderbookStreams", "grpc.health.v1.Health"} <= services
    edge = cluster.metrics(cluster.edges[0])
    assert edge("orderbook_relay_source_up") == 1 and edge("orderbook_relay_epoch") == 1
    assert edge("orderbook_relay_received_total", kind="update") > 50
    assert dropped(edge) == dropped_on_connecting  # none since
    assert sum(edge("orderbook_relay_rejected_total", reason=reason) for reason in EDGE_REJECTIONS) == 0


def test_kill_9_of_the_leader_the_standby_takes_over_and_the_edges_clients_keep_their_streams(
        cluster: Cluster, reader_factory) -> None:
    readers = readers_on_edges(cluster, reader_factory)
    old = cluster.leader()
    assert old is not None
    standby = next(node for node in cluster.nodes if node is not old)
    killed = cluster.kill(old)
    # Nothing new can reach the edges until the standby leads; its first summary must come within the lease + 1 s.
    for reader in readers:
        reader.wait_for(lambda book, reader=reader: bool(reader.arrivals) and reader.arrivals[-1] > killed + 0.05,
                        LEASE_TTL + 1.0, "from the new leader")
    took = min(t for t in readers[0].arrivals if t > killed + 0.05) - killed
    print(f"takeover: the first summary from the new leader {took:.2f} s after kill -9")
    assert cluster.leader() is standby
    for edge in cluster.edges:
        figures = cluster.metrics(edge)
        assert figures("orderbook_relay_epoch") == 2 and figures("orderbook_relay_leader_changes_total") == 1
    settle(cluster, *readers)
    assert all(reader.error is None for reader in readers), "an edge's client lost its stream"


def test_redis_restarted_everything_recovers_by_itself(cluster: Cluster, reader_factory) -> None:
    readers = readers_on_edges(cluster, reader_factory)
    cluster.redis.kill()
    cluster.redis.start()  # the same port, empty: no lease, no stored books
    wait_until(cluster.leader, 10, "a leader again")
    for edge in cluster.edges:
        wait_until(lambda edge=edge: cluster.metrics(edge)("orderbook_relay_epoch") >= 2, 10,
                   "the edge following the new epoch")
    settle(cluster, *readers)
    assert all(reader.error is None for reader in readers), "a quick Redis restart cost a client its stream"
    assert all(health(edge.target) == "SERVING" for edge in cluster.edges)


def test_redis_gone_the_edges_end_their_streams_the_book_nodes_serve_directly_and_all_recover(
        cluster: Cluster, reader_factory) -> None:
    readers = readers_on_edges(cluster, reader_factory)
    direct = [reader_factory(node.target) for node in cluster.nodes]
    gone = time.monotonic()
    cluster.redis.kill()
    for edge in cluster.edges:
        wait_until(lambda edge=edge: health(edge.target) == "NOT_SERVING", 3, f"{edge.log_path.name} NOT_SERVING")
    for reader in readers:
        wait_until(lambda reader=reader: reader.error is not None, SOURCE_TIMEOUT + 3, "the edge ending the stream")
        assert reader.error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[union-attr]
        assert reader.arrivals[-1] < gone + 0.5  # nothing served from a book nobody vouches for
    assert time.monotonic() - gone >= SOURCE_TIMEOUT - 0.5, "streams ended before the documented bound"
    refused = reader_factory(cluster.edges[0].target)
    wait_until(lambda: refused.error is not None, 5, "a new stream refused")
    assert refused.error.code() == grpc.StatusCode.UNAVAILABLE
    received = [reader.received for reader in direct]
    wait_until(lambda: all(r.received > n + 20 for r, n in zip(direct, received)), 10, "the book nodes still serving")
    assert all(node.proc.poll() is None for node in (*cluster.nodes, *cluster.edges))

    cluster.redis.start()
    for edge in cluster.edges:
        wait_until(lambda edge=edge: health(edge.target) == "SERVING", 15, f"{edge.log_path.name} SERVING again")
    again = readers_on_edges(cluster, reader_factory)
    settle(cluster, *again, *direct)
    for process in (*cluster.nodes, *cluster.edges):
        assert "Traceback" not in process.log() and " ERROR " not in process.log()


def _from_client_json(line: str) -> Book:
    summary = json.loads(line)
    rows = {side: tuple(Row(level["exchange"], level["price"], level["amount"]) for level in summary[side])
            for side in ("bids", "asks")}
    return Book(summary["spread"], rows["bids"], rows["asks"])


def test_an_edge_killed_its_client_goes_on_from_the_other_edge(cluster: Cluster) -> None:
    addresses = ",".join(edge.target for edge in cluster.edges)
    client = subprocess.Popen([str(REPO_ROOT / "bin" / "client"), "--addr", addresses, "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    stdout = client.stdout
    assert stdout is not None  # a pipe
    reading = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True)
    reading.start()
    try:
        assert client.stderr is not None
        wait_until(lambda: len(lines) >= 5, 10, "summaries from the first edge")
        cluster.kill(cluster.edges[0])
        moved = client.stderr.readline()
        assert f"going on from {cluster.edges[1].target}" in moved, moved
        shown = len(lines)
        wait_until(lambda: len(lines) > shown, 5, "summaries from the other edge")
        cluster.simulator.control.pause()
        expected = cluster.truth()
        wait_until(lambda: _from_client_json(lines[-1]) == expected, SETTLE, "the client's latest summary equal to "
                   "the truth")
        assert client.poll() is None
    finally:
        stop_process(client)
