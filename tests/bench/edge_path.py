"""The edge's own path, alone and timed: ``python -m tests.bench.edge_path [--streams N] [--rate R] ...``.

A publisher process PUBLISHes signed or unsigned envelopes to a private redis-server at ``--rate`` a second, each
summary's spread set to its ``time.monotonic()`` at publishing; an edge (:class:`orderbook.edge.Edge`, in this
process, as ``bin/run-edge`` runs it) serves them to a client process with ``--streams`` ``BookSummary`` streams,
which notes when each arrives. No book node, no simulator and no other client share the machine's cores, so the
figures are the edge's: the channel -> client latency, the edge process's CPU per envelope (every thread's, from
``getrusage``), and its main thread's, split into :meth:`RedisSource.take` (decode, check, apply, publish to the
streams) and the rest (reading the channel, the wake-ups; with streams, their sends too). ``--streams 0`` times the
source alone. Run it from another checkout (``PYTHONPATH=that-checkout``) for a before/after on the same machine.
"""

from __future__ import annotations

from orderbook.boot import boot

boot()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from orderbook.config import load_edge_config  # noqa: E402
from orderbook.edge import Edge  # noqa: E402
from orderbook.relay import envelope, source  # noqa: E402
from orderbook.relay.keys import DEFAULT_KEYS  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

PUBLISHER = r'''
import sys, time, redis
from orderbook.proto import orderbook_pb2
from orderbook.relay import envelope
from orderbook.relay.keys import DEFAULT_KEYS
from orderbook.symbol_state import SymbolState
url, rate, seconds, first, key = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
key = key.encode() or None
client = redis.Redis.from_url(url)
state = SymbolState("ETHBTC", ("binance", "bitstamp"), ("binance", "bitstamp"))
sequence, sent, start = first, 0, time.monotonic()
beat = start
while (now := time.monotonic()) < start + seconds:
    due = start + sent / rate
    if now < due:
        time.sleep(due - now)
        continue
    if now - beat >= 0.5:
        sequence, beat = sequence + 1, now
        client.publish(DEFAULT_KEYS.channel, envelope.heartbeat(1, sequence, "leader", ("ETHBTC",), 10, key))
    price = 100 + sent % 7
    bids = [orderbook_pb2.Level(exchange="binance", price=price - i / 100, amount=1.5 + sent % 3) for i in range(10)]
    asks = [orderbook_pb2.Level(exchange="bitstamp", price=price + 1 + i / 100, amount=2.5) for i in range(10)]
    summary = orderbook_pb2.Summary(spread=time.monotonic(), bids=bids, asks=asks).SerializeToString()
    sequence, sent = sequence + 1, sent + 1
    client.publish(DEFAULT_KEYS.channel, envelope.update(1, sequence, "leader", state, summary, key))
print(sequence)
'''

CLIENT = r'''
import json, sys, threading, time, grpc
from orderbook.proto import orderbook_pb2
target, streams = sys.argv[1], int(sys.argv[2])
delays, calls, lock = [], [], threading.Lock()
def follow():
    channel = grpc.insecure_channel(target)
    read = channel.unary_stream("/orderbook.OrderbookAggregator/BookSummary",
                                request_serializer=orderbook_pb2.Empty.SerializeToString, response_deserializer=None)
    call = read(orderbook_pb2.Empty(), wait_for_ready=True)
    calls.append(call)
    try:
        for data in call:
            now = time.monotonic()
            with lock:
                delays.append(now - orderbook_pb2.Summary.FromString(data).spread)
    except grpc.RpcError:
        pass
for _ in range(streams):
    threading.Thread(target=follow, daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:
    with lock:
        taken, delays[:] = list(delays), []
    print(json.dumps(taken), flush=True)
'''


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Timed:
    """Wraps a method, adding up its callers' thread CPU time."""

    def __init__(self, owner: Any, name: str) -> None:
        self.seconds, self.calls = 0.0, 0
        original: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.thread_time() - started
                self.calls += 1

        setattr(owner, name, timed)


def _round(url: str, edge: Edge, client: subprocess.Popen[str], args: argparse.Namespace, first: int,
           take: _Timed) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, url, str(args.rate), str(args.seconds), str(first),
                                  args.key], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    received, cpu, thread = sum(edge.shards['main'].stats.received.values()), _cpu(), time.thread_time()
    taken, take_calls = take.seconds, take.calls
    while publisher.poll() is None:
        gevent.sleep(0.05)
    cpu, thread = _cpu() - cpu, time.thread_time() - thread
    received = max(1, sum(edge.shards['main'].stats.received.values()) - received)
    taken, take_calls = take.seconds - taken, take.calls - take_calls
    gevent.sleep(0.2)
    assert client.stdin is not None and client.stdout is not None
    client.stdin.write("\n")
    client.stdin.flush()
    delays = sorted(delay * 1000 for delay in json.loads(client.stdout.readline()))
    out, err = publisher.communicate()
    if publisher.returncode:
        raise RuntimeError(f"the publisher failed ({publisher.returncode}): {err[-2000:]}")
    result = {"envelopes": received, "edge_cpu_us": cpu / received * 1e6, "main_thread_us": thread / received * 1e6,
              "take_us": taken / max(1, take_calls) * 1e6, "rest_us": (thread - taken) / received * 1e6,
              "last_sequence": int(out)}
    if delays:
        result |= {"p50_ms": delays[len(delays) // 2], "p99_ms": delays[int(len(delays) * 0.99)]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=5)
    parser.add_argument("--rate", type=float, default=300.0, help="envelopes a second (default 300)")
    parser.add_argument("--seconds", type=float, default=6.0, help="per round (default 6)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--key", default="", help="sign with this --relay-key (default: unsigned)")
    args = parser.parse_args()
    take = _Timed(source.RedisSource, "take")
    with tempfile.TemporaryDirectory(prefix="edge-path-") as directory:
        server = RedisServer(Path(directory) / "redis").start()
        try:
            redis_client = server.client()
            redis_client.set(DEFAULT_KEYS.lease, "1 leader")
            redis_client.hset(DEFAULT_KEYS.shards, "main", f"{2**52} 0")  # listed, as a book node lists its shard
            redis_client.set(DEFAULT_KEYS.catalog, envelope.heartbeat(1, 1, "leader", ("ETHBTC",), 10,
                                                                      args.key.encode() or None))
            edge_args = ["--source", server.url, "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "off"]
            if args.key:
                (Path(directory) / "key").write_text(args.key)
                edge_args += ["--relay-key", str(Path(directory) / "key")]
            edge = Edge(load_edge_config(edge_args))
            edge.start()
            while "main" not in edge.shards or not edge.shards["main"].source.connected:  # subscribed: what is
                gevent.sleep(0.01)  # published from here on arrives
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
            client = subprocess.Popen([sys.executable, "-c", CLIENT, f"127.0.0.1:{edge.grpc.port}",
                                       str(args.streams)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True)
            assert client.stdout is not None
            client.stdout.readline()
            warm = argparse.Namespace(**{**vars(args), "seconds": 1.0})
            first = _round(server.url, edge, client, warm, 1, take)["last_sequence"]
            rounds = []
            for _ in range(args.rounds):
                rounds.append(_round(server.url, edge, client, args, int(first), take))
                first = rounds[-1]["last_sequence"]
            client.kill()
        finally:
            server.stop()
    for name in rounds[0]:
        if name != "last_sequence" and all(name in r for r in rounds):
            values = [r[name] for r in rounds]
            print(f"{name:16s} {statistics.median(values):9.3f}  ({min(values):.3f}..{max(values):.3f})")
    os._exit(0)  # the edge's greenlets and gRPC threads: nothing to wait for


if __name__ == "__main__":
    main()
