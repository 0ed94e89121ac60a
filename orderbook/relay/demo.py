"""``make cluster-demo`` (``bin/cluster-demo``): the whole deployment on one machine, against the simulator.

Starts Redis without a single point of failure (a master, a replica and three sentinels), the exchange simulator,
two shards of two book nodes each publishing through Sentinel (``--shard a`` takes the first half of the symbols,
``--shard b`` the rest; in each, the first node to start leads and the other stands by) and two edges serving every
shard's symbols, then says what to try: stream from the edges with ``bin/client``, ``kill -9`` a shard's leader and
watch its standby take over while the other shard's streams go on, ``kill -9`` the Redis master and watch Sentinel
promote the replica, ``kill -9`` an edge and watch its client go on from the other. Each process logs to its own
file in a temporary directory. Ctrl-C stops everything.

    bin/cluster-demo [--symbol ETHBTC,BTCUSDT,ETHUSDT,LTCBTC] [--any-ports]

With ``--any-ports`` every listener takes a free port, and the addresses and process ids are printed as one JSON
line first (the test of this command uses it); otherwise the edges take the client's default ``127.0.0.1:5002``
and ``:5003``.

Its processes are its own to the end. Killing them is what the demo invites, so it watches them: one that exits
is reported at once (which, its exit code, its log) and reaped, never left a zombie. It stops them all whenever
it ends: on Ctrl-C, SIGTERM or SIGHUP (the terminal closed) even when started with them ignored (``&`` from a
script ignores SIGINT, yet the user means Ctrl-C and ``kill`` to stop it), on an error, and on its own death:
each book node and edge gets SIGTERM from the kernel if the demo dies first, even by SIGKILL (``PR_SET_PDEATHSIG``;
the simulator watches for that itself).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orderbook.ready_file import NotReady, read_ready_file
from orderbook.relay.redis_process import (RedisProcess, RedisStartError, SentinelProcess, redis_sentinel_binary,
                                           redis_server_binary, sentinel_url, sentinels_ready)
from orderbook.simulator.process import SimulatorError, SimulatorProcess

BIN = Path(__file__).resolve().parents[2] / "bin"
PROG = "cluster-demo"
EXIT_FAILED = 2
EXIT_ALL_GONE = 1
READY_TIMEOUT = 30.0
WATCH_INTERVAL = 0.2
"""Seconds between two looks at the processes: a death is reported within it."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
FIXED_REDIS_PORTS = (6390, 6391)
"""The master's and the replica's."""
FIXED_SENTINEL_PORTS = (26390, 26391, 26392)
MASTER = "orderbook"
"""The master's name, as the sentinels know it."""
SHARDS = ("a", "b")
NODES_PER_SHARD = 2
FIXED_NODE_PORTS = ((5012, 9112), (5013, 9113), (5014, 9114), (5015, 9115))
"""Each book node's gRPC and metrics ports, shard a's first (as FIXED_EDGE_PORTS for the edges)."""
FIXED_EDGE_PORTS = ((5002, 9103), (5003, 9104))
_PR_SET_PDEATHSIG = 1


class Stop(BaseException):
    """A signal asked the demo to stop: raised by the handler wherever the demo was, so that its ``finally``
    stops every process it started so far. Not an Exception, as KeyboardInterrupt is not: no ``except Exception``
    on the way (in a Redis or HTTP client) may swallow it."""


def _stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    ready_file: Path
    reported: bool = False
    """Its exit has been reported (and the process reaped)."""

    def ports(self) -> dict[str, int]:
        return read_ready_file(self.ready_file, self.proc, READY_TIMEOUT)


def _die_with_parent(parent: int) -> Callable[[], None]:
    """For ``preexec_fn``: the kernel sends the child SIGTERM when the demo dies, however it dies. Safe here: the
    demo runs no thread, so nothing can hold a lock across the fork."""

    def arrange() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the demo died before the request was made
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange


def _start(name: str, argv: list[str], directory: Path, grpc: int, metrics: int, children: list[Child]) -> None:
    """Start ``argv`` as ``name``, logging to its own file, and add it to ``children`` at once."""
    log, ready = directory / f"{name}.log", directory / f"{name}.ports.json"
    argv += ["--grpc-addr", f"127.0.0.1:{grpc}", "--metrics-addr", f"127.0.0.1:{metrics}", "--ready-file", str(ready)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True,  # a Ctrl-C reaches the demo alone, which stops them in order
                                preexec_fn=_die_with_parent(os.getpid()))
    children.append(Child(name, proc, log, ready))


def _exit_status(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _watch(children: list[Child], servers: list[tuple[str, RedisProcess]], simulator: SimulatorProcess) -> int:
    """Until a signal stops the demo (:class:`Stop`): report each process that ends, once, and reap it. Returns
    :data:`EXIT_ALL_GONE` once no book node or edge is left: nothing would be served."""
    reported: set[str] = set()
    while True:
        time.sleep(WATCH_INTERVAL)
        for child in children:
            if not child.reported and (code := child.proc.poll()) is not None:
                child.reported = True
                _say(f"{child.name} (pid {child.proc.pid}) {_exit_status(code)}; its log: {child.log}")
        for name, server in servers:
            if name not in reported and server.proc is not None and (code := server.proc.poll()) is not None:
                reported.add(name)
                _say(f"{name} (pid {server.proc.pid}) {_exit_status(code)}; its log: {server.log_path}")
        if "simulator" not in reported:
            try:
                code = simulator.wait(0)
            except subprocess.TimeoutExpired:
                pass
            else:
                reported.add("simulator")
                _say(f"the simulator (pid {simulator.pid}) {_exit_status(code)}; its log: above, on this terminal")
        if all(child.reported for child in children):
            _say("no book node or edge is left; stopping")
            return EXIT_ALL_GONE


def _stop_all(children: list[Child], simulator: SimulatorProcess | None,
              servers: list[tuple[str, RedisProcess]]) -> None:
    """SIGTERM to every process still running (edges first, then the nodes, the simulator, the sentinels and
    Redis), SIGKILL to any that has not exited within 10 s. Further signals are ignored meanwhile: a second Ctrl-C
    must not cut this short and leave processes behind."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    _say("stopping")
    for child in reversed(children):
        if child.proc.poll() is None:
            child.proc.terminate()
    for child in children:
        try:
            child.proc.wait(10)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
    if simulator is not None:
        simulator.stop()
    for _, server in reversed(servers):
        server.stop()
    for pid in children_of(os.getpid()):
        end_child(pid)


def children_of(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` and that are not reaped yet. A signal that stops the demo while
    it starts a process can come after the fork and before the process is known here (inside Popen, or before
    it is registered): such a one is found this way, as a child of the demo, whatever started it."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat_fields(int(entry.name))) is not None \
                and len(fields) > 1 and int(fields[1]) == parent:
            children.append(int(entry.name))
    return children


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, from the state on (field 3; the parent's pid
    next); None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # gone meanwhile
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after its last ")".
    return stat[stat.rfind(")") + 2:].split()


def end_child(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, SIGKILL if it has not exited within ``timeout``; reaped either way."""
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.05)
    except ChildProcessError:
        pass  # reaped meanwhile by its Popen object
    except ProcessLookupError:
        pass


def _start_redis(directory: Path, any_ports: bool, binaries: tuple[str, str],
                 servers: list[tuple[str, RedisProcess]]) -> str:
    """A master, its replica and three sentinels, each added to ``servers`` before it starts; the URL through the
    sentinels, once they could make a failover."""
    redis_server, redis_sentinel = binaries
    master = RedisProcess(directory / "redis-master", redis_server, None if any_ports else FIXED_REDIS_PORTS[0])
    servers.append(("the redis master", master))
    master.start()
    assert master.port is not None
    replica = RedisProcess(directory / "redis-replica", redis_server, None if any_ports else FIXED_REDIS_PORTS[1],
                           replica_of=master.port)
    servers.append(("the redis replica", replica))
    replica.start()
    sentinels = []
    for index, port in enumerate(FIXED_SENTINEL_PORTS):
        sentinel = SentinelProcess(directory / f"sentinel-{index + 1}", redis_sentinel, MASTER, master.port,
                                   port=None if any_ports else port)
        servers.append((f"sentinel-{index + 1}", sentinel))
        sentinel.start()
        sentinels.append(sentinel)
    deadline = time.monotonic() + READY_TIMEOUT
    while not sentinels_ready(sentinels, replica):  # a failover tried before this would find no one to promote
        if time.monotonic() > deadline:
            raise RedisStartError(f"the sentinels did not find each other and the replica within {READY_TIMEOUT:g} s")
        time.sleep(0.2)
    return sentinel_url(sentinels, MASTER)


def shard_symbols(symbols: str) -> dict[str, str]:
    """The symbols of each shard: the first half to shard a, the rest to b."""
    listed = symbols.split(",")
    half = (len(listed) + 1) // 2
    return {SHARDS[0]: ",".join(listed[:half]), SHARDS[1]: ",".join(listed[half:])}


def run(symbols: str, any_ports: bool, directory: Path, binaries: tuple[str, str]) -> int:
    children: list[Child] = []
    servers: list[tuple[str, RedisProcess]] = []
    simulator: SimulatorProcess | None = None
    try:  # each is known to the finally before it is started: a signal may come at any moment
        url = _start_redis(directory, any_ports, binaries, servers)
        simulator = SimulatorProcess("--symbol", symbols, "--log-level", "warning")
        simulator.start()
        venues = [f"--{key.replace('_', '-')}-url={venue}" for key, venue in simulator.urls.items()
                  if key != "control"]
        ports = iter(FIXED_NODE_PORTS)
        shards = shard_symbols(symbols)
        for shard, its_symbols in shards.items():
            for index in range(NODES_PER_SHARD):
                grpc, metrics = next(ports)
                _start(f"node-{shard}{index + 1}", [str(BIN / "run-server"), "--symbol", its_symbols, *venues,
                                                     "--publish", url, "--shard", shard],
                       directory, 0 if any_ports else grpc, 0 if any_ports else metrics, children)
                if index == 0:
                    children[-1].ports()  # listening: the shard's first node leads once in step
                    time.sleep(1.0)
        for index, (grpc, metrics) in enumerate(FIXED_EDGE_PORTS):
            _start(f"edge-{index + 1}", [str(BIN / "run-edge"), "--source", url],
                   directory, 0 if any_ports else grpc, 0 if any_ports else metrics, children)
        bound = {child.name: child.ports() for child in children}
        _tell(bound, children, url, shards, servers, simulator, directory, any_ports)
        return _watch(children, servers, simulator)
    except Stop:
        return 0
    finally:
        _stop_all(children, simulator, servers)


def _tell(ports: dict[str, dict[str, int]], children: list[Child], url: str, shards: dict[str, str],
          servers: list[tuple[str, RedisProcess]], simulator: SimulatorProcess, directory: Path,
          as_json: bool) -> None:
    def address(name: str) -> str:
        return f"127.0.0.1:{ports[name]['grpc_port']}"

    edge_children = [child for child in children if child.name.startswith("edge")]
    edges = [address(child.name) for child in edge_children]
    nodes = [child for child in children if child.name.startswith("node")]
    # bin/client --addr A,B streams from A first: killing A is what shows a client going on from B.
    first_edge = edge_children[0]
    server_pids = {name: server.proc.pid for name, server in servers if server.proc is not None}
    if as_json:
        pids = {"simulator": simulator.pid} | {name.replace("the ", "").replace(" ", "-"): pid
                                               for name, pid in server_pids.items()}
        print(json.dumps({"redis": url, "edges": edges, "nodes": [address(child.name) for child in nodes],
                          "logs": str(directory), "pids": pids | {c.name: c.proc.pid for c in children}}), flush=True)
    kill_edge = f"kill -9 {first_edge.proc.pid}"
    metrics = f"127.0.0.1:{ports[nodes[0].name]['metrics_port']}"
    kill_master = f"kill -9 {server_pids['the redis master']}"
    node_lines = "\n".join(f"    book node {address(child.name)} (shard {child.name[5]}, pid {child.proc.pid}, "
                           f"metrics 127.0.0.1:{ports[child.name]['metrics_port']})" for child in nodes)
    redis_lines = "\n".join(f"    {name:<18}pid {pid}, log {server.log_path}"
                            for (name, server), pid in zip(servers, server_pids.values()))
    print(f"""
cluster-demo: running, every process logging to {directory}
    redis URL   {url}
{redis_lines}
    simulator   control API {simulator.urls['control']}
    shards      {'; '.join(f'{shard}: {symbols}' for shard, symbols in shards.items())}
{node_lines}
    edges       {', '.join(f'{edge} (pid {child.proc.pid})' for edge, child in zip(edges, edge_children))}

Try, from another terminal:
    bin/client --addr {','.join(edges)} --list    every shard's symbols, through the edges
    bin/client --addr {','.join(edges)}        stream through the edges (moves to the other if one goes)
    bin/client --addr {','.join(edges)} --symbol {shards[SHARDS[1]].split(',')[0]}    a symbol of shard {SHARDS[1]}
    curl -s {metrics}/metrics | grep orderbook_relay_leader    whether {nodes[0].name} leads its shard
    kill -9 <a shard's leader's pid>       its standby takes over within about 2.5 s; the other shard's streams go on
    {kill_master:<38} the redis master: Sentinel promotes the replica within about 3 s; clients keep streaming
    {kill_edge:<38} {first_edge.name}, the edge that client streams from, goes: it goes on from the other
Ctrl-C stops everything; this window reports any process that ends.
""", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbol", default="ETHBTC,BTCUSDT,ETHUSDT,LTCBTC",
                        help="the symbols, at least two: shard a takes the first half, shard b the rest "
                        "(default %(default)s)")
    parser.add_argument("--any-ports", action="store_true",
                        help="free ports everywhere; print the addresses and process ids as JSON first")
    args = parser.parse_args(argv)
    if len(args.symbol.split(",")) < 2:
        parser.error(f"--symbol: at least two symbols, one for each shard, got {args.symbol!r}")
    for signum in STOP_SIGNALS:  # first, before any process exists; and whatever this one inherited
        signal.signal(signum, _stop)
    with tempfile.TemporaryDirectory(prefix="orderbook-cluster-") as directory:
        try:
            # Before anything starts: without them, their one line is all.
            binaries = redis_server_binary(), redis_sentinel_binary()
            _say(f"starting; every process logs to {directory}")
            return run(args.symbol, args.any_ports, Path(directory), binaries)
        except Stop:
            return 0
        except (RedisStartError, SimulatorError, NotReady, OSError) as error:
            _say(f"error: {error}")
            return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
