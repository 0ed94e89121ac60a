"""Shards, as they run: the simulator, a real redis-server, two shards of two book nodes each (``--shard a`` and
``--shard b``, different symbols), two edges serving the union, and a gRPC client per symbol on each edge. What the
clients receive is checked against the simulator's truth of their symbol after each fault; a fault of one shard
must leave the other shard's streams untouched."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from orderbook.relay.timing import LEASE_TTL, SOURCE_TIMEOUT
from orderbook.simulator.process import SimulatorProcess
from tests.support.cluster import Cluster, EdgeProcess, health, only_one_leading
from tests.support.service import Book, BookReader, ServerProcess, symbol_states, wait_until_matches_truth
from tests.support.waiting import wait_until

SHARDS = {"a": ("ETHBTC", "BTCUSDT"), "b": ("ETHUSDT", "BNBBTC")}
LATER = "LTCBTC"
"""A symbol the simulator serves that no shard has at first: a shard added while running takes it."""
BOTH = ("binance", "bitstamp")
SMALL_SNAPSHOTS = ("--binance-snapshot-limit", "100")
START = 30.0
"""Seconds for a process to start and its books to come in step: generous, on a shared 2-core machine."""
SETTLE = 5.0
LIST_BOUND = SOURCE_TIMEOUT + 3.0
"""Seconds within which an edge stops listing a shard whose last node stopped cleanly: the source timeout, one
reading of the list, one watch tick, and room for a loaded machine."""


class Shards:
    """The cluster's book nodes by shard, and a reader per (edge, symbol)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.nodes: dict[str, list[ServerProcess]] = {}
        self.readers: dict[tuple[int, str], BookReader] = {}

    def start_node(self, shard: str, symbols: tuple[str, ...]) -> ServerProcess:
        node = self.cluster.start_node("--shard", shard, "--symbol", ",".join(symbols), *SMALL_SNAPSHOTS)
        self.nodes.setdefault(shard, []).append(node)
        return node

    def leader(self, shard: str) -> ServerProcess | None:
        leading = only_one_leading(self.nodes[shard], f"two book nodes of shard {shard} lead at once")
        return leading[0] if leading else None

    def truth(self, symbol: str) -> Book:
        return Book.from_truth(self.cluster.simulator.control.truth(10, symbol)["merged"])

    def settle(self) -> None:
        """Pause the simulator: every reader must then hold its symbol's truth; then go on."""
        self.cluster.simulator.control.pause()
        try:
            for (_, symbol), reader in self.readers.items():
                wait_until_matches_truth(reader, lambda symbol=symbol: self.truth(symbol), SETTLE)
        finally:
            self.cluster.simulator.control.resume()


def going_on(readers: dict[tuple[int, str], BookReader]) -> None:
    """Every one of ``readers`` receives more, without an error."""
    counts = {key: reader.received for key, reader in readers.items()}
    wait_until(lambda: all(reader.received > counts[key] for key, reader in readers.items()), 5, "streams going on")
    assert all(reader.error is None for reader in readers.values())


def in_step(edge: EdgeProcess, symbols: tuple[str, ...]) -> bool:
    states = symbol_states(edge.target)
    return all(states.get(symbol, ((), ()))[1] == BOTH for symbol in symbols)


@pytest.fixture
def shards(tmp_path, simulator_factory, reader_factory) -> Iterator[Shards]:
    simulator: SimulatorProcess = simulator_factory(
        "--seed", "5", "--rate", "20", "--symbol", ",".join((*SHARDS["a"], *SHARDS["b"], LATER)))
    cluster = Cluster(tmp_path, simulator)
    deployment = Shards(cluster)
    with cluster.running():
        for shard, symbols in SHARDS.items():
            deployment.start_node(shard, symbols).wait_serving()
            wait_until(lambda shard=shard: deployment.leader(shard), START, f"a leader of shard {shard}")
        for shard, symbols in SHARDS.items():
            deployment.start_node(shard, symbols).wait_serving()
        for _ in range(2):
            cluster.start_edge()
        every = (*SHARDS["a"], *SHARDS["b"])
        for edge in cluster.edges:
            wait_until(lambda edge=edge: health(edge.target) == "SERVING", START, f"{edge.log_path.name} SERVING")
            wait_until(lambda edge=edge: in_step(edge, every), START, f"every symbol in step on {edge.log_path.name}")
        for index, edge in enumerate(cluster.edges):
            for symbol in every:
                deployment.readers[(index, symbol)] = reader_factory(edge.target, symbol)
        for reader in deployment.readers.values():
            reader.wait_for(lambda book: set(book.exchanges()) == set(BOTH), START, "with both exchanges")
        yield deployment


def test_every_symbol_equals_its_truth_through_each_shards_leader_killed_in_turn(shards: Shards,
                                                                                reader_factory) -> None:
    cluster = shards.cluster
    for edge in cluster.edges:
        assert list(symbol_states(edge.target)) == [*SHARDS["a"], *SHARDS["b"]]  # the shards by name
    default = reader_factory(cluster.edges[0].target)  # BookSummary: the first shard's default symbol
    default.wait_for(lambda book: True, 5, "at all")
    shards.settle()
    assert default.latest == shards.truth("ETHBTC")
    for shard, symbols in SHARDS.items():
        old = shards.leader(shard)
        assert old is not None
        killed = cluster.kill(old)
        for (_, symbol), reader in shards.readers.items():
            if symbol in symbols:  # paused, then a summary from the new leader within the lease + 1 s
                reader.wait_for(lambda book, reader=reader, killed=killed: bool(reader.arrivals)
                                and reader.arrivals[-1] > killed + 0.05,
                                LEASE_TTL + 1.0, f"of {symbol} from the new leader of shard {shard}")
        took = min(min(t for t in shards.readers[(0, s)].arrivals if t > killed + 0.05) for s in symbols) - killed
        print(f"shard {shard}: the first summary from its new leader {took:.2f} s after kill -9")
        going_on({key: reader for key, reader in shards.readers.items() if key[1] not in symbols})
        assert shards.leader(shard) is not None and shards.leader(shard) is not old
        shards.settle()
        assert all(reader.error is None for reader in shards.readers.values()), "a client lost its stream"
        assert default.error is None and all(health(edge.target) == "SERVING" for edge in cluster.edges)


def test_a_node_whose_symbols_another_shard_serves_refuses_to_start(shards: Shards) -> None:
    refused = shards.start_node("c", (LATER, "BTCUSDT"))
    assert refused.proc.wait(START) == 2
    errors = [line for line in refused.log().splitlines() if "error" in line.lower()]
    assert len(errors) == 1, refused.log()[-3000:]
    assert errors[0].startswith("run-server: error: --shard c: the symbols BTCUSDT are also shard a's"), errors[0]
    assert all(LATER not in symbol_states(edge.target) for edge in shards.cluster.edges)


def test_a_shard_added_while_running_is_served_and_one_stopped_cleanly_leaves_the_list(shards: Shards,
                                                                                        reader_factory) -> None:
    cluster = shards.cluster
    node = shards.start_node("c", (LATER,))
    for edge in cluster.edges:
        wait_until(lambda edge=edge: in_step(edge, (LATER,)), START, f"{LATER} in step on {edge.log_path.name}")
    later = [reader_factory(edge.target, LATER) for edge in cluster.edges]
    for reader in later:
        reader.wait_for(lambda book: set(book.exchanges()) == set(BOTH), START, "with both exchanges")
    cluster.simulator.control.pause()
    try:
        for reader in later:
            wait_until_matches_truth(reader, lambda: shards.truth(LATER), SETTLE)
    finally:
        cluster.simulator.control.resume()

    node.terminate()
    for edge in cluster.edges:
        wait_until(lambda edge=edge: LATER not in symbol_states(edge.target), LIST_BOUND,
                   f"{LATER} gone from {edge.log_path.name}'s Symbols")
    for reader in later:
        assert reader.error is not None and reader.error.code() == grpc.StatusCode.UNAVAILABLE
    assert all(reader.error is None for reader in shards.readers.values()), "another shard's client lost its stream"


def test_a_shard_without_a_leader_ends_only_its_own_streams_and_shows_no_venue_in_step(shards: Shards,
                                                                                      reader_factory) -> None:
    cluster = shards.cluster
    for node in shards.nodes["b"]:
        cluster.kill(node)
    ended = [reader for (_, symbol), reader in shards.readers.items() if symbol in SHARDS["b"]]
    for reader in ended:
        wait_until(lambda reader=reader: reader.error is not None, SOURCE_TIMEOUT + 3, "the edge ending the stream")
        assert reader.error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[union-attr]
    refused = reader_factory(cluster.edges[0].target, SHARDS["b"][0])
    wait_until(lambda: refused.error is not None, 5, "a new stream refused")
    assert refused.error.code() == grpc.StatusCode.UNAVAILABLE
    for edge in cluster.edges:
        states = symbol_states(edge.target)
        assert [states[symbol][1] for symbol in SHARDS["b"]] == [(), ()]
        assert all(states[symbol][1] == BOTH for symbol in SHARDS["a"])
        assert health(edge.target) == "SERVING"
    going_on({key: reader for key, reader in shards.readers.items() if key[1] in SHARDS["a"]})
