"""``bin/bench --scenario shards``: what splitting the symbols over shards costs and buys, on this machine.

* Symbols per core: the same symbols (40; 10 with --quick) at the symbols scenario's rates (Binance 10 diffs a
  second a symbol, Bitstamp 3, 1,000 levels), followed by one book node (one shard) and then by two (two shards,
  half the symbols each), all publishing through Redis: each book node's CPU over a steady window, and the symbols
  per core it comes to (all the symbols over the book nodes' cores together). One shard's node must stay under a
  core; two shards let the deployment follow twice as many on two machines at the same cost per symbol.
* Takeover per shard: two shards of two book nodes each and an edge; each shard's leader killed (SIGKILL) in turn,
  the time until a ``Book`` stream of that shard's symbol on the edge has a summary of its new leader.
* Failover through Sentinel: a master, a replica and three sentinels (down after 1 s), one book node and one edge
  through ``redis+sentinel://``; ``kill -9`` of the master, the time until Sentinel names another and until the
  edge's client has a summary again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from orderbook.relay.timing import LEASE_TTL, REDIS_RETRY_CAP, TICK
from orderbook.simulator.process import SimulatorProcess
from tests.bench.e2e_scenarios import Options
from tests.bench.live import Server
from tests.bench.relay import Edge
from tests.bench.report import Figure, median
from tests.bench.symbols import BINANCE_RATE, BITSTAMP_RATE, LEVELS, cpu_seconds, not_in_step, symbol_names
from tests.support.redis_server import RedisServer
from tests.support.sentinel import SentinelRedis
from tests.support.service import BookReader
from tests.support.waiting import wait_until

SYMBOLS, QUICK_SYMBOLS = 40, 10
IN_STEP_TIMEOUT = 120.0
SMALL_SNAPSHOTS = ("--binance-snapshot-limit", "100")
"""In step within seconds (the cost measured is that of following the diffs, not of the first snapshots)."""
TAKEOVER_BOUND_S = LEASE_TTL + TICK + 1.0
"""The lease, a tick, and a second for the edge and a loaded machine (as the end-to-end tests allow)."""
QUIET_AFTER_KILL = 0.05
"""Seconds after the kill from which a summary a client receives is taken for the new leader's."""


def _sim_args(symbols: Sequence[str]) -> list[str]:
    return ["--symbol", ",".join(symbols), "--levels", str(LEVELS), "--binance-rate", str(BINANCE_RATE),
            "--bitstamp-rate", str(BITSTAMP_RATE), "--log-level", "WARNING"]


@contextlib.contextmanager
def _stack(workdir: Path, name: str, symbols: Sequence[str]) -> Iterator[tuple[str, SimulatorProcess,
                                                                           contextlib.ExitStack]]:
    """Redis and the simulator; the ExitStack stops whatever else is started on it, first."""
    with contextlib.ExitStack() as exits:
        redis = RedisServer(workdir / f"{name}-redis").start()
        exits.callback(redis.stop)
        simulator = exits.enter_context(SimulatorProcess(*_sim_args(symbols)))
        yield redis.url, simulator, exits


def _node(exits: contextlib.ExitStack, simulator: SimulatorProcess, log: Path, url: str, shard: str,
          symbols: Sequence[str]) -> Server:
    node = Server(simulator.urls, log, "--publish", url, "--shard", shard, "--symbol", ",".join(symbols),
                  *SMALL_SNAPSHOTS)
    exits.callback(node.stop)
    return node


def _cost(options: Options, shards: int, symbols: list[str]) -> dict[str, Any]:
    """Each book node's CPU over the steady window, the symbols split evenly over ``shards`` shards."""
    window, settle = options.seconds(20, 6), options.seconds(4, 2)
    size = -(-len(symbols) // shards)
    parts = {f"s{index}": symbols[index * size:(index + 1) * size] for index in range(shards)}
    with _stack(options.workdir, f"shards-cost-{shards}", symbols) as (url, simulator, exits):
        nodes = {shard: _node(exits, simulator, options.workdir / f"shards-cost-{shards}-{shard}.log", url, shard,
                              part) for shard, part in parts.items()}
        for shard, node in nodes.items():
            node.wait_serving()
            wait_until(lambda node=node, part=parts[shard]: not not_in_step(node.metrics(), part), IN_STEP_TIMEOUT,
                       f"every symbol of shard {shard} in step", interval=0.5)
        time.sleep(settle)
        before, started = {shard: cpu_seconds(node.pid) for shard, node in nodes.items()}, time.monotonic()
        time.sleep(window)
        after, elapsed = {shard: cpu_seconds(node.pid) for shard, node in nodes.items()}, time.monotonic() - started
    cores = {shard: (after[shard] - before[shard]) / elapsed for shard in nodes}
    return {"symbols": len(symbols), "shards": shards, "window_s": elapsed, "cores_by_shard": cores,
            "cores": sum(cores.values()), "symbols_per_core": len(symbols) / max(sum(cores.values()), 1e-9)}


def _first_after(reader: BookReader, moment: float, timeout: float, what: str) -> float:
    reader.wait_for(lambda _book: bool(reader.arrivals) and reader.arrivals[-1] > moment, timeout, what)
    return min(arrival for arrival in reader.arrivals if arrival > moment)


def _takeovers(options: Options) -> dict[str, Any]:
    symbols = {"a": ["ETHBTC"], "b": ["BTCUSDT"]}
    rounds = []
    with _stack(options.workdir, "shards-takeover", [*symbols["a"], *symbols["b"]]) as (url, simulator, exits):
        nodes = {shard: [_node(exits, simulator, options.workdir / f"shards-takeover-{shard}{index}.log", url, shard,
                               part) for index in range(2)] for shard, part in symbols.items()}
        for node in (node for pair in nodes.values() for node in pair):
            node.wait_serving()
        edge = Edge(url, options.workdir / "shards-takeover-edge.log")
        exits.callback(edge.stop)
        edge.wait_serving()
        readers = {shard: BookReader(edge.target, part[0]) for shard, part in symbols.items()}
        for reader in readers.values():
            exits.callback(reader.close)
            reader.wait_for(lambda _book: True, 30, "a first summary")
        for shard, pair in nodes.items():
            time.sleep(options.seconds(3, 1))
            leader = wait_until(lambda pair=pair: [node for node in pair if node.proc.poll() is None
                                                   and node.metrics().value("orderbook_relay_leader") == 1],
                                15, f"a leader of shard {shard}", accept=lambda found: len(found) == 1)[0]
            others = {name: reader.received for name, reader in readers.items() if name != shard}
            killed = time.monotonic()
            leader.proc.kill()
            leader.proc.wait()
            took = _first_after(readers[shard], killed + QUIET_AFTER_KILL, 15, f"of shard {shard}'s new leader")
            rounds.append({"shard": shard, "takeover_s": took - killed,
                           "other_shards_received_meanwhile": {name: readers[name].received - count
                                                               for name, count in others.items()}})
        ended = [shard for shard, reader in readers.items() if reader.error is not None]
    return {"rounds": rounds, "streams_ended": ended}


def _failover(options: Options) -> dict[str, Any]:
    with contextlib.ExitStack() as exits:
        redis = SentinelRedis(options.workdir / "shards-sentinel")
        exits.callback(redis.stop)
        simulator = exits.enter_context(SimulatorProcess(*_sim_args(["ETHBTC"])))
        node = _node(exits, simulator, options.workdir / "shards-sentinel-node.log", redis.url, "main", ["ETHBTC"])
        node.wait_serving()
        edge = Edge(redis.url, options.workdir / "shards-sentinel-edge.log")
        exits.callback(edge.stop)
        edge.wait_serving()
        reader = BookReader(edge.target, "ETHBTC")
        exits.callback(reader.close)
        reader.wait_for(lambda _book: True, 30, "a first summary")
        time.sleep(options.seconds(3, 1))
        old = redis.master_port()
        killed = redis.kill_master()
        wait_until(lambda: redis.master_port() not in (None, old), 30, "Sentinel naming a new master", interval=0.02)
        named = time.monotonic() - killed
        back = _first_after(reader, killed + QUIET_AFTER_KILL, 30, "after the failover") - killed
        return {"sentinel_failover_s": named, "client_back_s": back, "stream_ended": reader.error is not None}


def shards(options: Options) -> tuple[list[Figure], dict[str, Any]]:
    symbols = symbol_names(QUICK_SYMBOLS if options.quick else SYMBOLS)
    one, two = _cost(options, 1, symbols), _cost(options, 2, symbols)
    takeovers = _takeovers(options)
    failover = _failover(options)
    took = [round_["takeover_s"] for round_ in takeovers["rounds"]]
    count = len(symbols)
    figures = [
        Figure(f"symbols per core, one shard ({count} symbols)", one["symbols_per_core"], "symbols",
               note="the symbols over the book node's cores, at the symbols scenario's rates"),
        Figure(f"symbols per core, two shards ({count} symbols)", two["symbols_per_core"], "symbols",
               note="the symbols over both book nodes' cores together"),
        Figure("busiest book node, two shards", max(two["cores_by_shard"].values()), "cores",
               note=f"one shard: {one['cores']:.2f} cores"),
        *(Figure(f"takeover, shard {round_['shard']}", round_["takeover_s"], "s", TAKEOVER_BOUND_S, "lower",
                 note="SIGKILL of its leader -> a Book stream of its symbol on the edge has its new leader's summary")
          for round_ in takeovers["rounds"]),
        Figure("takeover median", median(took), "s"),
        Figure("Sentinel failover (kill -9 of the master -> another named)", failover["sentinel_failover_s"], "s"),
        Figure("client back after the failover", failover["client_back_s"], "s",
               failover["sentinel_failover_s"] + LEASE_TTL + REDIS_RETRY_CAP, "lower",
               note="kill -9 of the master -> the edge's client has a summary again; bound: failover + lease + "
               "one retry"),
        Figure("streams ended (takeovers and failover)",
               len(takeovers["streams_ended"]) + failover["stream_ended"], "count", 0, "lower"),
    ]
    return figures, {"one_shard": one, "two_shards": two, "takeovers": takeovers, "failover": failover}
