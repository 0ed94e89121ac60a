"""Scenarios 2-6, end to end on loopback: latency, maximum sustained ingest, fan-out, memory, start-up.

Latency is measured black-box with the simulator's probes (:mod:`orderbook.simulator.probe`): the simulator
records ``time.monotonic()`` as it sends a frame carrying a marker amount at a venue's best bid, a client
process records ``time.monotonic()`` when a summary first shows that marker. Both clocks are CLOCK_MONOTONIC.
Each function runs once and returns (figures, details); :func:`tests.bench.report.repeated` takes medians.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import requests

from orderbook.proto import orderbook_pb2
from tests.bench.live import ClientGroup, Server, Stack, probe_stats
from tests.bench.report import Figure, median, percentile

IN_FLIGHT = 0.5
"""Probes sent in the last this-many seconds of a window are not counted (their summaries may still be coming)."""


@dataclass(frozen=True)
class Options:
    workdir: Path
    quick: bool
    minutes: float
    profile_dir: Path | None = None
    serve_processes: int = 0
    """The fan-out scenario's server runs with ``--serve-processes`` this (0: the server's default)."""

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full


def _measure_probes(stack: Stack, clients: ClientGroup, seconds: float) -> tuple[dict[str, Any], list[dict]]:
    start = time.monotonic()
    time.sleep(seconds)
    end = time.monotonic()
    results = clients.finish()
    stats = probe_stats(stack.sim.control.probes(), results, clients.streams, start, end - IN_FLIGHT)
    received = sum(sum(result["received"]) for result in results)
    summary = {**stats.summary(), "messages_received": received,
               "messages_per_s": received / (time.monotonic() - clients.ready_at),
               "client_errors": sum(result["error_count"] for result in results)}
    return summary, results


# -- 2. latency ------------------------------------------------------------------------------------------------


def latency(options: Options) -> tuple[list[Figure], dict[str, Any]]:
    """1,000 frames/s across the two venues, 10 clients (two processes, five channels each)."""
    profile = options.profile_dir / "server-latency.pyisession" if options.profile_dir else None
    with Stack(options.workdir, ["--rate", "500", "--probe-every", "10"], [], profile=profile) as stack:
        stack.server.wait_serving()
        clients = ClientGroup(stack.server.target, processes=2, streams_each=5, channels_each=5)
        try:
            clients.wait_ready()
            time.sleep(1.0)
            before = stack.sim.control.stats()
            summary, _ = _measure_probes(stack, clients, options.seconds(10, 3))
            after = stack.sim.control.stats()
        finally:
            clients.kill()
    events = sum(after[name]["events"] - before[name]["events"] for name in ("binance", "bitstamp"))
    summary["sim_events"] = events
    figures = [
        Figure("p50 send->receipt", summary["p50_ms"], "ms", 1.0, "lower"),
        Figure("p99 send->receipt", summary["p99_ms"], "ms", 5.0, "lower"),
        Figure("max send->receipt", summary["max_ms"], "ms"),
        Figure("probes never seen", summary["lost_fraction"], "fraction",
               note="conflated away (a newer summary replaced it before the stream sent it) or outside the top 10"),
    ]
    return figures, summary


# -- 3. maximum sustained ingest --------------------------------------------------------------------------------

RAMP = (2_000, 5_000, 10_000, 15_000, 20_000, 25_000)
"""Total frames/s asked of the simulator. Beyond ~25k it cannot send them itself on 2 cores shared with the server
(asked 30k, it sent 20k), so a higher step would measure the simulator."""
PROBES_PER_SECOND = 40
"""Per venue, whatever the rate: enough samples per step, few enough not to change the load."""


def _keeps_up(step: dict[str, Any]) -> bool:
    first, second = step["probe_first_half"], step["probe_second_half"]
    return bool(
        step["received_ratio"] is not None and step["received_ratio"] >= 0.95
        and step["reconnects"] == 0
        and first["p50_ms"] is not None and second["p50_ms"] is not None
        and first["p99_ms"] <= 250 and second["p99_ms"] <= 250
        and second["p50_ms"] <= 2 * first["p50_ms"] + 5
    )


def max_sustained(options: Options) -> tuple[list[Figure], dict[str, Any]]:
    """Raise the simulator's total rate step by step until the served book stops keeping up.

    A step keeps up when the server received at least 95 % of the frames the simulator sent in the window, no
    connection was lost, and the probe latency stayed bounded: p99 <= 250 ms in both halves of the window and
    second-half p50 at most twice the first half's (+5 ms), i.e. no growing backlog. Probes never seen are not held
    against a step: at high rates the broadcaster conflates summaries (by design), and a marker replaced within one
    send is lost.
    """
    window = options.seconds(8, 3)
    ramp = RAMP[:3] if options.quick else RAMP
    steps: list[dict[str, Any]] = []
    with Stack(options.workdir, ["--rate", str(ramp[0] / 2), "--probe-every", "25"], [], name="server-ramp") as stack:
        stack.server.wait_serving()
        clients = ClientGroup(stack.server.target, processes=1, streams_each=1)
        try:
            clients.wait_ready()
            control = stack.sim.control
            for rate in ramp:
                control.set_rate(binance=rate / 2, bitstamp=rate / 2)
                control.set_probe(max(1, round(rate / 2 / PROBES_PER_SECOND)))
                time.sleep(1.0)
                try:
                    sim0, srv0, t0 = control.stats(), stack.server.metrics(), time.monotonic()
                    time.sleep(window)
                    sim1, srv1, t1 = control.stats(), stack.server.metrics(), time.monotonic()
                except requests.RequestException as error:  # an overloaded server cannot even answer /metrics
                    steps.append({"rate": rate, "error": f"{type(error).__name__}: /metrics did not answer"})
                    break
                sent = sum(sim1[n]["frames_sent"] - sim0[n]["frames_sent"] for n in ("binance", "bitstamp"))
                received = (srv1.value("orderbook_frames_received_total")
                            - srv0.value("orderbook_frames_received_total"))
                reconnects = (srv1.value("orderbook_exchange_reconnects_total")
                              - srv0.value("orderbook_exchange_reconnects_total"))
                steps.append({"rate": rate, "t0": t0, "t1": t1, "sent": sent, "received": received,
                              "sent_per_s": sent / (t1 - t0), "received_per_s": received / (t1 - t0),
                              "received_ratio": received / sent if sent else None, "reconnects": reconnects})
                if received / max(sent, 1) < 0.8 or reconnects:
                    break  # far behind: the next steps can only be worse, and the backlog would spoil them
            results = clients.finish()
        finally:
            clients.kill()
        sent_probes = stack.sim.control.probes()
    best = None
    for step in steps:
        if "error" in step:
            step["keeps_up"] = False
            break
        middle = (step["t0"] + step["t1"]) / 2
        step["probe_first_half"] = probe_stats(sent_probes, results, 1, step["t0"], middle).summary()
        step["probe_second_half"] = probe_stats(sent_probes, results, 1, middle, step["t1"] - IN_FLIGHT).summary()
        step["keeps_up"] = _keeps_up(step)
        if not step["keeps_up"]:
            break
        best = step
    figures = [
        Figure("max sustained (sent rate)", best["sent_per_s"] if best else 0.0, "frames/s", 10_000, "higher",
               note="highest ramp step that kept up"),
        Figure("p99 at that rate", best["probe_second_half"]["p99_ms"] if best else None, "ms"),
        Figure("highest rate tried (asked)", steps[-1]["rate"] if steps else None, "frames/s"),
    ]
    return figures, {"steps": steps}


# -- 4. fan-out -----------------------------------------------------------------------------------------------


STREAMS_PER_CONNECTION = 5
"""Clients are spread over connections as separate programs would be: SO_REUSEPORT balances connections."""


def fanout(options: Options) -> tuple[list[Figure], dict[str, Any]]:
    """200 streams at the natural summary rate (p99 delivery), then 1,000 streams connecting at once."""
    details: dict[str, Any] = {"serve_processes": options.serve_processes,
                               "streams_per_connection": STREAMS_PER_CONNECTION}
    figures: list[Figure] = []
    server_args = ["--max-streams", "2000", "--serve-processes", str(options.serve_processes)]
    with Stack(options.workdir, ["--probe-every", "5"], server_args, name="server-fanout") as stack:
        stack.server.wait_serving()
        clients = ClientGroup(stack.server.target, processes=4, streams_each=50,
                              channels_each=50 // STREAMS_PER_CONNECTION)
        try:
            started = clients.wait_ready()
            time.sleep(1.0)
            summary, _ = _measure_probes(stack, clients, options.seconds(10, 3))
        finally:
            clients.kill()
        summary["streams_started"] = started
        details["200_streams"] = summary
        figures += [
            Figure("200 streams: p50 send->receipt", summary["p50_ms"], "ms"),
            Figure("200 streams: p99 send->receipt", summary["p99_ms"], "ms", 25.0, "lower",
                   note="probe sent by the simulator -> client receipt (includes ingest: an upper bound on "
                        "publish->receipt)"),
            Figure("200 streams: msgs delivered/s", summary["messages_per_s"], "msgs/s"),
            Figure("200 streams: probes never seen", summary["lost_fraction"], "fraction"),
        ]
        time.sleep(1.0)  # the 200 streams' cancellations drain
        clients = ClientGroup(stack.server.target, processes=5, streams_each=200, start_timeout=20,
                              channels_each=200 // STREAMS_PER_CONNECTION)
        try:
            started = clients.wait_ready()
            sent0, t0 = stack.server.metrics().value("orderbook_summaries_sent_total"), time.monotonic()
            time.sleep(options.seconds(3, 2))
            sent1, t1 = stack.server.metrics().value("orderbook_summaries_sent_total"), time.monotonic()
            results = clients.finish()
        finally:
            clients.kill()
    sent_per_s = (sent1 - sent0) / (t1 - t0)
    first = [at for result in results for at in result["first_at"]]
    connected = [at - clients.launched_at for at in first if at is not None]
    receiving = sum(1 for result in results for count in result["received"] if count >= 2)
    all_connected = max(connected) if len(connected) == clients.streams else None
    details["1000_streams"] = {
        "started": started, "connected": len(connected), "receiving": receiving,
        "all_connected_s": all_connected, "p50_connected_s": percentile(connected, 0.5),
        "messages": sum(sum(result["received"]) for result in results), "sent_per_s": sent_per_s,
        "client_errors": sum(result["error_count"] for result in results),
        "errors": [error for result in results for error in result["errors"]][:5],
    }
    figures += [
        Figure("1000 streams: all connected", all_connected, "s", 5.0, "lower",
               note="client processes launched -> every stream has its first summary"),
        Figure("1000 streams: receiving", receiving, "streams", 1000, "higher",
               note="streams with a second summary after all connected"),
        Figure("1000 streams: msgs sent/s", sent_per_s, "msgs/s",
               note="the server's count, all connected (with serving processes: reported each second)"),
    ]
    return figures, details


# -- 5. memory ---------------------------------------------------------------------------------------------------

MAX_GROWTH_MB = 5.0


def memory(options: Options) -> tuple[list[Figure], dict[str, Any]]:
    """Two 5,000-level books and 200 streams for ``--minutes``; RSS sampled every second from /proc."""
    duration = options.minutes * 60
    samples: list[tuple[float, float]] = []
    with Stack(options.workdir, ["--levels", "5000"], ["--binance-snapshot-limit", "5000", "--max-streams", "2000"],
               name="server-memory") as stack:
        stack.server.wait_serving()
        clients = ClientGroup(stack.server.target, processes=4, streams_each=50)
        try:
            started = clients.wait_ready()
            start = time.monotonic()
            while (elapsed := time.monotonic() - start) < duration:
                samples.append((elapsed, stack.server.memory()["VmRSS"]))
                time.sleep(1.0)
            peak = stack.server.memory()["VmHWM"]
            levels = stack.server.metrics()
            results = clients.finish()
        finally:
            clients.kill()
    rss = [value for _, value in samples]
    quarter = max(1, len(rss) // 4)
    early, late = median(rss[quarter:2 * quarter] or rss[:quarter]), median(rss[-quarter:])
    growth = late - early if early is not None and late is not None else None
    details = {
        "duration_s": duration, "streams_started": started, "samples": len(rss),
        "rss_first_mb": rss[0] if rss else None, "rss_last_mb": rss[-1] if rss else None,
        "book_levels": {f"{exchange}/{side}": value for (exchange, side), value
                        in levels.by_label("orderbook_book_levels", "exchange", "side").items()},
        "messages": sum(sum(result["received"]) for result in results),
        "rss_mb_every_10s": rss[::10],
    }
    figures = [
        Figure("peak RSS (VmHWM)", peak, "MB", 100.0, "lower"),
        Figure("RSS growth (2nd quarter -> last)", growth, "MB", MAX_GROWTH_MB, "lower",
               note=f"over {options.minutes:g} min; the full claim needs --minutes 10"),
    ]
    return figures, details


# -- 6. start-up ---------------------------------------------------------------------------------------------------


_EAGER_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 5), ("grpc.min_reconnect_backoff_ms", 5),
                    ("grpc.max_reconnect_backoff_ms", 20)]


def _first_full_summary(target: str, depth: int, deadline: float) -> float | None:
    """Monotonic time of the first summary with ``depth`` levels a side from both exchanges, or None.

    The channel is opened before the server listens; its reconnect backoff (gRPC's default: 1 s, then longer)
    would add up to a second of the client's own waiting, so it retries every few milliseconds instead."""
    channel = grpc.insecure_channel(target, options=_EAGER_RECONNECT)
    stream = channel.unary_stream("/orderbook.OrderbookAggregator/BookSummary",
                                  request_serializer=orderbook_pb2.Empty.SerializeToString,
                                  response_deserializer=orderbook_pb2.Summary.FromString)
    try:
        call = stream(orderbook_pb2.Empty(), wait_for_ready=True, timeout=max(0.1, deadline - time.monotonic()))
        for summary in call:
            exchanges = {level.exchange for level in (*summary.bids, *summary.asks)}
            if len(summary.bids) >= depth and len(summary.asks) >= depth and exchanges >= {"binance", "bitstamp"}:
                at = time.monotonic()
                call.cancel()
                return at
    except grpc.RpcError:
        return None
    finally:
        channel.close()
    return None


def startup(options: Options) -> tuple[list[Figure], dict[str, Any]]:
    """Launch of bin/run-server -> first full summary, less the exchanges' own snapshot response time."""
    from orderbook.simulator.process import SimulatorProcess

    with SimulatorProcess("--log-level", "WARNING") as sim:
        found: dict[str, float | None] = {}
        server = Server(sim.urls, options.workdir / "server-startup.log")
        try:
            reader = threading.Thread(
                target=lambda: found.setdefault("at", _first_full_summary(server.target, 10, time.monotonic() + 30)))
            reader.start()
            reader.join(35)
            at = found.get("at")
            samples = server.metrics() if at is not None else None
        finally:
            server.stop()
    if at is None:
        raise RuntimeError(f"no full summary within 30 s:\n{server.log_tail()}")
    assert samples is not None  # read once at was
    total = at - server.launched_at
    fetch = {name: samples.value("orderbook_snapshot_fetch_duration_seconds_sum", exchange=name)
             for name in ("binance", "bitstamp")}
    net = total - max(fetch.values())
    figures = [
        Figure("launch -> first full summary", total, "s"),
        Figure("snapshot fetch (slowest venue)", max(fetch.values()), "s"),
        Figure("start-up less exchange time", net, "s", 1.0, "lower",
               note="the two snapshot fetches run concurrently: the slowest one is subtracted"),
    ]
    return figures, {"total_s": total, "snapshot_fetch_s": fetch, "snapshot_fetch_sum_s": sum(fetch.values())}
