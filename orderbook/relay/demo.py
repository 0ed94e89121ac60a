"""``make cluster-demo`` (``bin/cluster-demo``): the whole deployment on one machine, against the simulator.

Starts a private redis-server, the exchange simulator, two book nodes publishing through Redis (the first to
start leads, the other stands by) and two edges serving from it, then says what to try: stream from the edges
with ``bin/client``, ``kill -9`` the leader and watch the standby take over, stop Redis and watch the edges give
their clients up. Each process logs to its own file in a temporary directory. Ctrl-C stops everything.

    bin/cluster-demo [--symbol ETHBTC,BTCUSDT] [--any-ports]

With ``--any-ports`` every listener takes a free port, and the addresses are printed as one JSON line first (the
test of this command uses it); otherwise the edges take the client's default ``127.0.0.1:5002`` and ``:5003``.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orderbook.ready_file import NotReady, read_ready_file
from orderbook.relay.redis_process import RedisProcess, RedisStartError, redis_server_binary
from orderbook.simulator.process import SimulatorError, SimulatorProcess

BIN = Path(__file__).resolve().parents[2] / "bin"
EXIT_FAILED = 2
READY_TIMEOUT = 30.0
FIXED_REDIS_PORT = 6390
FIXED_NODE_PORTS = ((5012, 9112), (5013, 9113))
"""Each book node's gRPC and metrics ports (as FIXED_EDGE_PORTS for the edges)."""
FIXED_EDGE_PORTS = ((5002, 9103), (5003, 9104))


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    ready_file: Path

    def ports(self) -> dict[str, int]:
        return read_ready_file(self.ready_file, self.proc, READY_TIMEOUT)


def _start(name: str, argv: list[str], directory: Path, grpc: int, metrics: int) -> Child:
    log, ready = directory / f"{name}.log", directory / f"{name}.ports.json"
    argv += ["--grpc-addr", f"127.0.0.1:{grpc}", "--metrics-addr", f"127.0.0.1:{metrics}", "--ready-file", str(ready)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # a Ctrl-C reaches the demo alone, which stops them in order
    return Child(name, proc, log, ready)


def run(symbols: str, any_ports: bool, directory: Path) -> int:
    redis = RedisProcess(directory / "redis", redis_server_binary(), None if any_ports else FIXED_REDIS_PORT).start()
    simulator = SimulatorProcess("--symbol", symbols, "--log-level", "warning").start()
    children: list[Child] = []
    try:
        venues = [f"--{key.replace('_', '-')}-url={url}" for key, url in simulator.urls.items() if key != "control"]
        for index, (grpc, metrics) in enumerate(FIXED_NODE_PORTS):
            children.append(_start(f"node-{index + 1}", [str(BIN / "run-server"), "--symbol", symbols, *venues,
                                                         "--publish", redis.url],
                                   directory, 0 if any_ports else grpc, 0 if any_ports else metrics))
            if index == 0:
                children[0].ports()  # listening: the first node leads once in step
                time.sleep(1.0)
        for index, (grpc, metrics) in enumerate(FIXED_EDGE_PORTS):
            children.append(_start(f"edge-{index + 1}", [str(BIN / "run-edge"), "--source", redis.url],
                                   directory, 0 if any_ports else grpc, 0 if any_ports else metrics))
        ports = {child.name: child.ports() for child in children}
        _tell(ports, children, redis, simulator, directory, any_ports)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        print("cluster-demo: stopping", file=sys.stderr, flush=True)
        for child in reversed(children):
            if child.proc.poll() is None:
                child.proc.terminate()
        for child in children:
            try:
                child.proc.wait(10)
            except subprocess.TimeoutExpired:
                child.proc.kill()
        simulator.stop()
        redis.stop()


def _tell(ports: dict[str, dict[str, int]], children: list[Child], redis: RedisProcess,
          simulator: SimulatorProcess, directory: Path, as_json: bool) -> None:
    def address(name: str) -> str:
        return f"127.0.0.1:{ports[name]['grpc_port']}"

    edges = [address(child.name) for child in children if child.name.startswith("edge")]
    nodes = {address(child.name): child.proc.pid for child in children if child.name.startswith("node")}
    if as_json:
        print(json.dumps({"redis": redis.url, "edges": edges, "nodes": list(nodes), "logs": str(directory)}),
              flush=True)
        return
    node_lines = "\n".join(f"    book node {addr} (pid {pid}, metrics 127.0.0.1:"
                           f"{ports[f'node-{index}']['metrics_port']})"
                           for index, (addr, pid) in enumerate(nodes.items(), start=1))
    print(f"""
cluster-demo: running, every process logging to {directory}
    redis       {redis.url}
    simulator   control API {simulator.urls['control']}
{node_lines}
    edges       {', '.join(edges)}

Try, from another terminal:
    bin/client --addr {','.join(edges)}        stream through the edges (moves to the other if one goes)
    bin/client --addr {list(nodes)[0]}                   stream from a book node directly
    curl -s 127.0.0.1:{ports['node-1']['metrics_port']}/metrics | grep orderbook_relay_leader    which node leads
    kill -9 <the leader's pid>             the standby takes over within about 2.5 s; clients keep streaming
    kill -9 {children[-1].proc.pid}                          an edge goes: the client above goes on from the other
Ctrl-C stops everything.
""", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cluster-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbol", default="ETHBTC,BTCUSDT", help="the symbols (default %(default)s)")
    parser.add_argument("--any-ports", action="store_true", help="free ports everywhere; print the addresses as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="orderbook-cluster-") as directory:
        try:
            return run(args.symbol, args.any_ports, Path(directory))
        except (RedisStartError, SimulatorError, NotReady, OSError) as error:
            print(f"cluster-demo: error: {error}", file=sys.stderr)
            return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
