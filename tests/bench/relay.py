"""The relay scenarios ("beyond one machine", :mod:`orderbook.relay`): book nodes publishing through a private
Redis, edges serving from it, all on loopback.

- ``relay_latency``: one book node (``--publish``), one edge; the same probes (:mod:`orderbook.simulator.probe`)
  timed by clients of the book node and clients of the edge at the same time, so the two paths share the load
  and the hop is the difference. A subscriber on the relay's channel (a thread of this process) times each probe
  as it leaves Redis, which splits the hop into the leader's publish (book node -> Redis) and the rest (Redis ->
  edge -> client); the edge's own ``orderbook_relay_hop_seconds`` (leader's publish time -> edge, wall clocks) is
  in the details.
- ``relay_fanout``: two edges with 1,000 ``BookSummary`` streams each (five a connection, as the fan-out scenario
  spreads them, connected while the market is paused: see :func:`relay_fanout`), one book node feeding both
  through Redis: delivery latency (probe sent -> client), whether every stream receives, and the CPU of each edge,
  of the book node and of the clients (utime + stime from /proc over the window).
- ``relay_takeover``: two book nodes, one edge, one ``BookSummary`` client of the edge (a thread of this process
  keeping every receipt time). The leader (its /metrics: ``orderbook_relay_leader 1``) is killed with SIGKILL; the
  takeover time runs from the kill to the first summary the client receives from the new leader; the killed node
  is started again as a standby, and the next kill follows once it is in step. The new leader cannot publish before
  the old lease lapses, at least ``LEASE_TTL - TICK`` after the kill, and a SIGKILLed leader's last summaries reach
  the client within milliseconds, so the first receipt more than :data:`QUIET_AFTER_KILL` after the kill is the
  new leader's; the subscriber's first envelope of the new epoch confirms it (and gives the election alone).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import redis

from orderbook.proto import orderbook_pb2
from orderbook.relay import envelope
from orderbook.relay.keys import DEFAULT_KEYS
from orderbook.relay.timing import LEASE_TTL, TICK
from orderbook.simulator.probe import marker_key
from orderbook.simulator.process import SimulatorProcess
from tests.bench.e2e_scenarios import IN_FLIGHT, STREAMS_PER_CONNECTION, Options
from tests.bench.live import PYTHON, ClientGroup, Server, _env, launcher, probe_stats
from tests.bench.report import Figure, median, percentile
from tests.bench.symbols import cpu_seconds
from tests.metrics_scrape import Samples
from tests.support.ports import server_port_args
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

HOP_TARGET_MS = 1.0
"""What the hop (edge p50 - direct p50) may add: the issue's target, on this machine."""
TAKEOVER_BOUND_S = LEASE_TTL + TICK + 0.5
"""The lease lapses at most ``LEASE_TTL`` after the leader's last renewal, a standby tries every ``TICK``, and the new
leader's first summary then crosses Redis and the edge: half a second is more than that last leg needs."""
NODE_PROFILE = "relay-node.pyisession"
EDGE_PROFILE = "relay-edge.pyisession"
"""The pyinstrument sessions ``bin/bench --profile DIR --scenario relay_latency`` writes into DIR."""
QUIET_AFTER_KILL = 1.0
"""Seconds after the kill from which a summary the client receives is the new leader's (see the module docstring)."""


class Edge(Server):
    """``bin/run-edge --source URL``: the same ready file, health, /metrics and stop as a book node's; under
    pyinstrument when ``profile`` is set, as a book node."""

    def __init__(self, source: str, log_path: Path, *extra: str, profile: Path | None = None) -> None:
        self.profile = profile
        self.ready_file = log_path.with_name(log_path.name + ".ports.json")
        self.ready_file.unlink(missing_ok=True)
        self.log_path = log_path
        self.launched_at = time.monotonic()
        args = [*server_port_args(self.ready_file), "--source", source, "--log-level", "warning", *extra]
        if profile is None:
            command = [str(launcher("run-edge")), *args]
        else:
            command = [PYTHON, "-m", "pyinstrument", "--interval", "0.0005", "-r", "session", "-o", str(profile),
                       "-m", "orderbook.edge_server", *args]
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_env())


class RelayStack:
    """Redis, the simulator, ``nodes`` book nodes publishing through Redis and ``edges`` edges reading it; ``with``
    stops them all. Ready once every node and edge is SERVING and one node leads."""

    def __init__(self, workdir: Path, sim_args: list[str], nodes: int, edges: int, node_args: tuple[str, ...] = (),
                 edge_args: tuple[str, ...] = (), name: str = "relay", profile_dir: Path | None = None) -> None:
        """``profile_dir``: run the first book node and the first edge under pyinstrument, their sessions written
        there (:data:`NODE_PROFILE`, :data:`EDGE_PROFILE`) when they stop."""
        self.workdir, self.name, self.node_args, self.profile_dir = workdir, name, node_args, profile_dir
        self._exit = contextlib.ExitStack()
        self._started = 0
        try:
            self.redis = RedisServer(workdir / f"{name}-redis").start()
            self._exit.callback(self.redis.stop)
            self.sim = self._exit.enter_context(SimulatorProcess(*sim_args, "--log-level", "WARNING"))
            self.nodes = [self.start_node() for _ in range(nodes)]
            self.edges = [Edge(self.redis.url, workdir / f"{name}-edge{i}.log", *edge_args,
                               profile=profile_dir / EDGE_PROFILE if profile_dir and i == 0 else None)
                          for i in range(edges)]
            for edge in self.edges:
                self._exit.callback(edge.stop)
            for node in self.nodes:
                node.wait_serving()
            self.leader()
            for edge in self.edges:
                edge.wait_serving()
        except BaseException:
            self._exit.close()
            raise

    def start_node(self) -> Server:
        self._started += 1
        profile = self.profile_dir / NODE_PROFILE if self.profile_dir and self._started == 1 else None
        node = Server(self.sim.urls, self.workdir / f"{self.name}-node{self._started}.log", "--publish",
                      self.redis.url, *self.node_args, profile=profile)
        self._exit.callback(node.stop)
        return node

    def leader(self, timeout: float = 15.0) -> Server:
        """The one book node whose /metrics says it leads (waiting for an election, if one is under way)."""

        def leading() -> list[Server]:
            return [node for node in self.nodes if node.proc.poll() is None
                    and node.metrics().value("orderbook_relay_leader") == 1]

        found = wait_until(leading, timeout, "a book node leading", accept=lambda found: len(found) == 1,
                           interval=0.05)
        return found[0]

    def __enter__(self) -> RelayStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()


class ChannelWatch:
    """A subscriber to the relay's channel, on a thread: when each epoch was first heard, and (``markers``) when each
    probe marker first left Redis in a summary."""

    def __init__(self, url: str, markers: bool = False) -> None:
        self.epochs: dict[int, float] = {}
        self.markers: dict[int, float] = {}
        self.envelopes = 0
        self.errors: list[str] = []
        self._want_markers = markers
        self._client = redis.Redis.from_url(url, socket_timeout=5)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(DEFAULT_KEYS.channel)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="channel-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                message = self._pubsub.get_message(timeout=0.1)
                if message is None or message["type"] != "message":
                    continue
                now = time.monotonic()
                self.envelopes += 1
                item = envelope.read(message["data"])
                self.epochs.setdefault(item.epoch, now)
                if self._want_markers and isinstance(item, envelope.Update) and item.summary:
                    for level in orderbook_pb2.Summary.FromString(item.summary).bids:
                        key = marker_key(level.amount)
                        if key is not None:
                            self.markers.setdefault(key, now)
        except Exception as error:  # noqa: BLE001 - reported with the figures, not raised on a thread
            self.errors.append(f"{type(error).__name__}: {error}")

    def first_after(self, epoch: int) -> tuple[int, float] | None:
        """The first epoch newer than ``epoch`` heard, and when; None if none yet."""
        newer = [(at, number) for number, at in self.epochs.items() if number > epoch]
        return (min(newer)[1], min(newer)[0]) if newer else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pubsub.close()
        self._client.close()


class SummaryTimes:
    """One ``BookSummary`` stream on a thread, keeping the monotonic time of every summary; a stream that ends is
    counted, and opened again."""

    def __init__(self, target: str) -> None:
        self.times: list[float] = []
        self.ended: list[str] = []
        self._channel = grpc.insecure_channel(target)
        self._call: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="summary-times", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        read: grpc.UnaryStreamMultiCallable[orderbook_pb2.Empty, bytes] = self._channel.unary_stream(
            "/orderbook.OrderbookAggregator/BookSummary", request_serializer=orderbook_pb2.Empty.SerializeToString,
            response_deserializer=None)
        while not self._stop.is_set():
            self._call = read(orderbook_pb2.Empty(), wait_for_ready=True)
            try:
                for _ in self._call:
                    self.times.append(time.monotonic())
            except grpc.RpcError as error:
                if self._stop.is_set():
                    return
                self.ended.append(f"{error.code().name}: {error.details()}")
                time.sleep(0.05)

    def first_after(self, at: float) -> float | None:
        return next((t for t in list(self.times) if t > at), None)

    def close(self) -> None:
        self._stop.set()
        if self._call is not None:
            self._call.cancel()
        self._thread.join(5)
        self._channel.close()


def _window_probes(sim: SimulatorProcess, groups: dict[str, ClientGroup], seconds: float,
                   ) -> tuple[dict[str, dict[str, Any]], list[tuple[int, str, float]], float, float]:
    start = time.monotonic()
    time.sleep(seconds)
    end = time.monotonic()
    results = {name: group.finish() for name, group in groups.items()}
    sent = sim.control.probes()
    summaries = {}
    for name, group in groups.items():
        stats = probe_stats(sent, results[name], group.streams, start, end - IN_FLIGHT)
        summaries[name] = {**stats.summary(), "results": results[name]}
    return summaries, sent, start, end - IN_FLIGHT


def _mean_ms(histogram: str, before: Samples, after: Samples) -> float | None:
    """The mean of a histogram's observations between two scrapes, in ms."""
    count = after.value(f"{histogram}_count") - before.value(f"{histogram}_count")
    total = after.value(f"{histogram}_sum") - before.value(f"{histogram}_sum")
    return total / count * 1000 if count else None


def _median_ms(histogram: str, before: Samples, after: Samples) -> float | None:
    """The median of a histogram's observations between two scrapes, in ms, interpolated within its bucket as
    Prometheus's histogram_quantile does."""
    earlier = before.by_label(f"{histogram}_bucket", "le")
    counts = {le: count - earlier.get(le, 0.0) for le, count in after.by_label(f"{histogram}_bucket", "le").items()}
    ordered = sorted((float(le), count) for (le,), count in counts.items())
    total = ordered[-1][1] if ordered else 0
    if not total:
        return None
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= total / 2:
            if bound == float("inf"):
                return lower_bound * 1000
            return (lower_bound + (bound - lower_bound) * (total / 2 - lower_count) / (count - lower_count)) * 1000
        lower_bound, lower_count = bound, count
    return None


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


# -- relay_latency ----------------------------------------------------------------------------------------------


def relay_latency(options: Options) -> tuple[list[Figure], dict[str, Any]]:
    """1,000 frames/s (as the latency scenario), five clients on the book node and five on the edge."""
    with RelayStack(options.workdir, ["--rate", "500", "--probe-every", "10"], nodes=1, edges=1,
                    name="relay-latency", profile_dir=options.profile_dir) as stack:
        node, edge = stack.nodes[0], stack.edges[0]
        watch = ChannelWatch(stack.redis.url, markers=True)
        groups = {"direct": ClientGroup(node.target, processes=1, streams_each=5, channels_each=5),
                  "edge": ClientGroup(edge.target, processes=1, streams_each=5, channels_each=5)}
        try:
            for group in groups.values():
                group.wait_ready()
            time.sleep(1.0)
            node_before, edge_before, redis_before = node.metrics(), edge.metrics(), _script_time(stack.redis)
            stats, sent, start, end = _window_probes(stack.sim, groups, options.seconds(10, 3))
            node_after, edge_after, redis_after = node.metrics(), edge.metrics(), _script_time(stack.redis)
        finally:
            for group in groups.values():
                group.kill()
            watch.close()
    direct, via_edge = stats["direct"], stats["edge"]
    window = {key: at for key, _, at in sent if start <= at < end}
    to_redis = [(watch.markers[key] - at) * 1000 for key, at in window.items() if key in watch.markers]
    # Each probe's first receipt on each path: the hop it took, probe by probe (same probe, same moment).
    firsts = {}
    for name in ("direct", "edge"):
        seen: dict[int, float] = {}
        for result in stats[name].pop("results"):
            for key, times in result["markers"].items():
                seen[int(key)] = min(seen.get(int(key), float("inf")), *times)
        firsts[name] = seen
    firsts["redis"] = watch.markers

    def paired(later: str, earlier: str) -> dict[str, Any]:
        """Probe by probe, the first receipt on one path less the first on the other (ms)."""
        gaps = [(firsts[later][key] - firsts[earlier][key]) * 1000 for key in window
                if key in firsts[later] and key in firsts[earlier]]
        return {"samples": len(gaps), "p50": percentile(gaps, 0.5), "p99": percentile(gaps, 0.99)}

    details: dict[str, Any] = {"direct": direct, "edge": via_edge,
               "to_redis": {"samples": len(to_redis), "p50_ms": percentile(to_redis, 0.5),
                            "p99_ms": percentile(to_redis, 0.99)},
               # Probe by probe: each path's first client against the other, and against the subscriber.
               "paired_ms": {"edge_after_direct": paired("edge", "direct"),
                             "redis_after_direct": paired("redis", "direct"),
                             "edge_after_redis": paired("edge", "redis")},
               # From the processes' own histograms: the leader's publish -> the edge took the envelope (wall
               # clocks), and summary published -> handed to a stream, at the node and at the edge (where
               # "published" is the leader's publish time, so the hop is in it).
               "histograms_ms": {
                   f"{what}_{name}": measure(histogram, before, after)
                   for what, measure in (("mean", _mean_ms), ("p50", _median_ms))
                   for name, histogram, before, after in (
                       ("leader_to_edge", "orderbook_relay_hop_seconds", edge_before, edge_after),
                       ("node_publish_to_send", "orderbook_publish_to_send_seconds", node_before, node_after),
                       ("edge_publish_to_send", "orderbook_publish_to_send_seconds", edge_before, edge_after))},
               # Redis's own time in the leader's fenced publish script (INFO commandstats), per call.
               "redis_script_us_per_call": (redis_after[0] - redis_before[0]) / max(
                   1, redis_after[1] - redis_before[1]),
               "redis_script_calls_per_s": (redis_after[1] - redis_before[1]) / (end - start + IN_FLIGHT),
               "watch_envelopes": watch.envelopes, "watch_errors": watch.errors}
    hop50 = _delta(via_edge["p50_ms"], direct["p50_ms"])
    figures = [
        Figure("direct p50 frame->client", direct["p50_ms"], "ms"),
        Figure("direct p99 frame->client", direct["p99_ms"], "ms"),
        Figure("edge p50 frame->client", via_edge["p50_ms"], "ms"),
        Figure("edge p99 frame->client", via_edge["p99_ms"], "ms"),
        Figure("hop at p50 (edge - direct)", hop50, "ms", HOP_TARGET_MS, "lower",
               note="both paths measured at once, on the same probes"),
        Figure("hop at p99 (edge - direct)", _delta(via_edge["p99_ms"], direct["p99_ms"]), "ms"),
        Figure("hop split: direct client -> leaving Redis", details["paired_ms"]["redis_after_direct"]["p50"], "ms",
               note="p50, probe by probe, a subscriber of the relay's channel: the leader's share of the hop"),
        Figure("hop split: leaving Redis -> edge client", details["paired_ms"]["edge_after_redis"]["p50"], "ms",
               note="p50, probe by probe: the edge's share of the hop"),
        Figure("edge probes never seen", via_edge["lost_fraction"], "fraction"),
    ]
    return figures, details


def _script_time(server: RedisServer) -> tuple[float, int]:
    """Microseconds Redis has spent in EVALSHA (the leader's fenced publish, mostly), and how many calls."""
    client = server.client()
    try:
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
    finally:
        client.close()
    return float(stats.get("usec", 0)), int(stats.get("calls", 0))


def _sent(edges: list[Edge]) -> float:
    return sum(edge.metrics().value("orderbook_summaries_sent_total") for edge in edges)


# -- relay_fanout -----------------------------------------------------------------------------------------------

FANOUT_STREAMS = 1000
"""Per edge."""
FANOUT_PROCESSES = 2
"""Client processes per edge."""


def relay_fanout(options: Options) -> tuple[list[Figure], dict[str, Any]]:
    """Two edges, 1,000 streams each, at the natural rate (50 events/s a venue), every fifth event a probe.

    The streams connect while the market is paused (each gets the latest summary at once): with the market
    running, the streams already connected (their clients and edges) take both cores of a 2-core machine, which
    connected only some 1,350 of the 2,000 in 30 s: that measures the machine's connect storm, not the edges'
    fan-out (the fanout scenario measures connecting under load, for one server). The market resumes for the
    window."""
    each = FANOUT_STREAMS // FANOUT_PROCESSES
    with RelayStack(options.workdir, ["--probe-every", "5"], nodes=1, edges=2, edge_args=("--max-streams", "2000"),
                    name="relay-fanout") as stack:
        stack.sim.control.pause()
        groups = {f"edge{i}": ClientGroup(edge.target, processes=FANOUT_PROCESSES, streams_each=each,
                                          channels_each=each // STREAMS_PER_CONNECTION, start_timeout=30)
                  for i, edge in enumerate(stack.edges)}
        try:
            started = {name: group.wait_ready() for name, group in groups.items()}
            launched = min(group.launched_at for group in groups.values())
            stack.sim.control.resume()
            time.sleep(1.0)
            assert stack.redis.proc is not None  # started
            pids = {"node": stack.nodes[0].pid, **{f"edge{i}": edge.pid for i, edge in enumerate(stack.edges)},
                    "redis": stack.redis.proc.pid, "simulator": stack.sim.pid}
            clients = [proc.pid for group in groups.values() for proc in group.procs]
            cpu0, sent0 = {name: cpu_seconds(pid) for name, pid in pids.items()}, _sent(stack.edges)
            clients0 = sum(map(cpu_seconds, clients))
            start = time.monotonic()
            time.sleep(options.seconds(10, 3))
            end = time.monotonic()
            cpu1, sent1 = {name: cpu_seconds(pid) for name, pid in pids.items()}, _sent(stack.edges)
            clients1 = sum(map(cpu_seconds, clients))
            results = {name: group.finish() for name, group in groups.items()}
            sent = stack.sim.control.probes()
        finally:
            for group in groups.values():
                group.kill()
    cpu = {name: (cpu1[name] - cpu0[name]) / (end - start) for name in pids}
    cpu["clients"] = (clients1 - clients0) / (end - start)
    every = [result for per_edge in results.values() for result in per_edge]
    streams = sum(group.streams for group in groups.values())
    stats = probe_stats(sent, every, streams, start, end - IN_FLIGHT).summary()
    first = [at for result in every for at in result["first_at"]]
    connected = [at - launched for at in first if at is not None]
    counts = [count for result in every for count in result["received"]]
    receiving = sum(1 for count in counts if count >= 2)
    messages = sum(counts)
    details = {"streams": streams, "started": started, "connected": len(connected),
               "all_connected_s": max(connected) if len(connected) == streams else None,
               "receiving": receiving, "received_per_stream": {"min": min(counts), "p50": percentile(counts, 0.5)},
               "messages": messages, "cpu_cores": cpu, "probes": stats,
               "client_errors": sum(result["error_count"] for result in every),
               "errors": [error for result in every for error in result["errors"]][:5]}
    figures = [
        Figure("2x1000 streams: receiving", receiving, "streams", 2 * FANOUT_STREAMS, "higher",
               note="streams with a summary after the market resumed"),
        Figure("2x1000 streams: all connected", details["all_connected_s"], "s",
               note="market paused: client processes launched -> every stream has its first summary"),
        Figure("p50 frame->client via edges", stats["p50_ms"], "ms"),
        Figure("p99 frame->client via edges", stats["p99_ms"], "ms"),
        Figure("msgs sent/s (both edges)", (sent1 - sent0) / (end - start), "msgs/s",
               note="the edges' own count over the window"),
        Figure("edge CPU (busier edge)", max(cpu["edge0"], cpu["edge1"]), "cores"),
        Figure("book node CPU", cpu["node"], "cores", note="publishes once to Redis whatever the edges serve"),
    ]
    return figures, details


# -- relay_takeover ---------------------------------------------------------------------------------------------

KILLS = 10
QUICK_KILLS = 3
SETTLE = 1.0
"""Seconds of steady summaries before each kill (after the restarted node is in step)."""


def relay_takeover(options: Options) -> tuple[list[Figure], dict[str, Any]]:
    """Kill the leader (SIGKILL) ten times; each time, kill -> the edge's client has a summary of the new leader."""
    kills = QUICK_KILLS if options.quick else KILLS
    rounds: list[dict[str, Any]] = []
    with RelayStack(options.workdir, [], nodes=2, edges=1, name="relay-takeover") as stack:
        edge = stack.edges[0]
        watch = ChannelWatch(stack.redis.url)
        client = SummaryTimes(edge.target)
        try:
            wait_until(lambda: client.times, 10, "the edge's first summary", interval=0.05)
            for _ in range(kills):
                time.sleep(SETTLE)
                leader = stack.leader()
                epoch = int(leader.metrics().value("orderbook_relay_epoch"))
                killed_at = time.monotonic()
                leader.proc.kill()
                leader.proc.wait()
                stack.nodes.remove(leader)
                new_leader = stack.leader(timeout=LEASE_TTL + 10)
                new_epoch, heard_at = wait_until(partial(watch.first_after, epoch), 10,
                                                 f"an envelope of an epoch after {epoch}")
                received_at = wait_until(partial(client.first_after, killed_at + QUIET_AFTER_KILL), 10,
                                         "a summary of the new leader")
                before = [t for t in client.times if killed_at < t <= killed_at + QUIET_AFTER_KILL]
                rounds.append({
                    "epoch": epoch, "new_epoch": new_epoch, "takeover_s": received_at - killed_at,
                    "election_s": heard_at - killed_at, "edge_to_client_s": received_at - heard_at,
                    "summaries_after_kill_before_quiet": len(before),
                    "last_old_summary_after_kill_s": (max(before) - killed_at) if before else None,
                    "new_leader_pid": new_leader.pid,
                })
                restarted = stack.start_node()
                stack.nodes.append(restarted)
                restarted.wait_serving()
            edge_epoch = int(edge.metrics().value("orderbook_relay_epoch"))
            leader_changes = int(edge.metrics().value("orderbook_relay_leader_changes_total"))
        finally:
            client.close()
            watch.close()
    takeovers = [r["takeover_s"] for r in rounds]
    elections = [r["election_s"] for r in rounds]
    # A summary heard before the new epoch left Redis would not be the new leader's: none may be counted.
    early = sum(1 for r in rounds if r["edge_to_client_s"] < 0)
    details = {"kills": kills, "rounds": rounds, "client_streams_ended": client.ended,
               "edge_epoch_at_end": edge_epoch, "edge_leader_changes": leader_changes,
               "summaries_counted_before_new_epoch": early, "watch_errors": watch.errors}
    figures = [
        Figure(f"takeover median ({kills} kills)", median(takeovers), "s",
               note="SIGKILL of the leader -> the edge's client has a summary of the new leader"),
        Figure("takeover worst", max(takeovers), "s", TAKEOVER_BOUND_S, "lower",
               note=f"bound: lease {LEASE_TTL:g} s + tick {TICK:g} s + 0.5 s"),
        Figure("election median (kill -> new epoch in Redis)", median(elections), "s"),
        Figure("edge streams ended by takeovers", len(client.ended), "count", 0, "lower"),
    ]
    return figures, details
