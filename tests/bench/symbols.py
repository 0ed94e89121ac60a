"""The many-symbols scenarios: one book process following N symbols on both venues, each at a realistic rate.

Each step starts the simulator with N symbols (:func:`symbol_names`: ETHBTC, the default symbol, first), Binance at
10 frames/s per symbol (the ``@depth@100ms`` stream sends at most one frame per 100 ms) and Bitstamp at 3, books of
1,000 levels a side (the simulator's ``--levels``: as deep as the server keeps Binance books by default), and
``bin/run-server --symbol A,B,...`` against it, at its default settings otherwise. The simulator sends Binance's
symbols together on the venue's 100-ms beat, one burst of N frames every 100 ms with the default symbol last (its
place in the burst is the longest wait a symbol has: docs/protocols.md, "When frames come"), and spreads Bitstamp's
pairs over each period, each on its own. Then, in this order:

- start-up: from the launch of the server until every symbol is in step on both venues (the simulator lists every
  symbol on both), polling ``orderbook_exchange_in_step`` on /metrics, and on until every Binance book, in step on
  a first snapshot sized to what is served, has been deepened to the 1,000 levels kept
  (``orderbook_book_deepenings_total``); meanwhile the snapshot requests each venue received (the simulator's
  ``rest_requests``), the rate-limit answers it gave (``rest_rate_limited``, 429) and the server's
  ``orderbook_snapshot_fetch_duration_seconds_count`` and ``orderbook_snapshot_errors_total`` are sampled, which
  give the snapshot pacing that decides the start-up time;
- a steady window after all are in step and deepened: the book process's CPU (utime + stime from
  /proc/<pid>/stat, as a fraction of one core), the time its main thread (the hub) was ready to run but waited for
  a core (/proc/<pid>/schedstat, as a fraction of the window: other processes on the machine, which lengthen
  every wait in the hub alike, so a tail that moves with it is the host's), frame-to-client latency for one gRPC
  client of the default symbol (``BookSummary``), measured as the latency scenario does (the simulator's probes:
  send time of a marker on the default symbol's best bid -> the client's first summary showing it), and the book
  process's RSS at its end.

RSS per symbol is reported two ways: the total over N, and the RSS above a one-symbol server (the first step of
:func:`symbols`) over the N - 1 symbols added, which is the cost a symbol adds and the figure the 2 MB target holds.

Until ``bin/run-server`` takes a list of symbols only one symbol can run (``--symbols 1``); a larger count fails at
once, saying so (:func:`symbol_lists_refused`), rather than after a server start.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from orderbook.simulator.config import MAX_SYMBOLS
from tests.bench.e2e_scenarios import IN_FLIGHT, Options
from tests.bench.live import ClientGroup, Server, Stack, probe_stats
from tests.bench.report import Figure
from tests.metrics_scrape import Samples

VENUES = ("binance", "bitstamp")
BINANCE_RATE = 10.0
"""Frames/s per symbol: ``<symbol>@depth@100ms`` sends at most one frame per 100 ms (the simulator sends one frame
per event, so its event rate is the frame rate)."""
BITSTAMP_RATE = 3.0
"""Frames/s per symbol: "a few" (``diff_order_book`` sends one per change; a liquid pair sends a few a second)."""
LEVELS = 1000
"""Levels per side of every book, both venues (simulator ``--levels``): as deep as the server keeps Binance books at
its default ``--binance-snapshot-limit``."""
PROBE_EVERY = 1
"""Every event of the default symbol is a probe (the others' markets walk as usual): ~13 samples a second for the one
client, the most a realistic rate allows. A probe only changes the best bid's amount, as a small diff does."""

DEFAULT_COUNTS = (100, 200)
DEFAULT_RAMP = (100, 200, 300, 400)
CPU_TARGET = 0.5
"""Cores, at up to CPU_TARGET_SYMBOLS symbols (the issue sets it at 100; below, it must hold too)."""
CPU_TARGET_SYMBOLS = 100
P99_TARGET_MS = 5.0
P99_RATIO_TARGET = 2.0
"""The one-symbol client's p99 beside N symbols, at most this many times its p99 alone in the same run (issue 21):
the absolute 5 ms holds on one machine only."""
RSS_PER_SYMBOL_TARGET_MB = 2.0

POLL_SECONDS = 0.5
"""Start-up polling interval: /metrics with hundreds of symbols costs the server a little each time."""
STARTUP_BASE_SECONDS = 60.0
STARTUP_PER_SYMBOL_SECONDS = 1.5
"""Start-up deadline, to all deepened: Binance's 6,000 weight a minute at 50 a 1,000-level snapshot allows 2
snapshots a second, so N symbols need N / 2 s at least once the first minute's allowance is spent; 1.5 s each
leaves room for pacing below the limit (first snapshots weigh 5 each: a tenth of that)."""

_BASES = (
    "BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE", "AVAX", "DOT", "LINK", "MATIC", "LTC", "TRX", "SHIB", "BCH",
    "UNI", "ATOM", "XLM", "ETC", "FIL", "APT", "ARB", "OP", "NEAR", "ALGO", "VET", "ICP", "HBAR", "QNT", "AAVE",
    "GRT", "EGLD", "SAND", "MANA", "AXS", "THETA", "EOS", "XTZ", "FLOW", "CHZ", "MKR", "SNX", "CRV", "COMP", "YFI",
    "SUSHI", "ZEC", "DASH", "KSM", "RUNE", "ENJ", "BAT", "ZIL", "IOTA", "NEO", "WAVES", "KAVA", "ONE", "CELO", "INJ",
    "LDO", "STX", "IMX", "GALA", "FTM", "RNDR", "PEPE", "SUI", "SEI", "TIA",
)
_QUOTES = ("USDT", "BTC", "ETH", "USDC", "EUR", "FDUSD", "TRY", "BNB")
DEFAULT_SYMBOL = "ETHBTC"


def symbol_names(count: int) -> list[str]:
    """``count`` distinct, plausible pair names, ETHBTC (the service's default symbol) first.

    Deterministic, and each list is the start of every longer one, so runs of different sizes share their
    symbols (and, the simulator seeding each market from its name, their markets). Every name is 2-20 upper-case
    letters and digits, as both the server and the simulator require. Real-looking pairs run out after some 550;
    then come ``T0001USDT``... up to the simulator's limit."""
    if not 1 <= count <= MAX_SYMBOLS:
        raise ValueError(f"symbol count must be 1 to {MAX_SYMBOLS}, got {count}")
    names = [DEFAULT_SYMBOL]
    seen = set(names)
    for quote in _QUOTES:
        for base in _BASES:
            name = base + quote
            if base != quote and name not in seen:
                seen.add(name)
                names.append(name)
    index = 0
    while len(names) < count:
        index += 1
        names.append(f"T{index:04d}USDT")
    return names[:count]


def symbol_lists_refused(symbols: Sequence[str]) -> str | None:
    """Why ``bin/run-server`` would refuse ``--symbol A,B,...`` (its own configuration error), or None if it takes
    it. Asked of the server's configuration in process: no server is started to find out."""
    from orderbook.config import ConfigError, load_config

    try:
        load_config(["--symbol", ",".join(symbols)], environ={})
    except ConfigError as error:
        return str(error)
    return None


def _check_server_takes(count: int) -> None:
    if count > 1 and (refused := symbol_lists_refused(symbol_names(2))):
        raise RuntimeError(f"run-server takes no symbol list yet; use --symbols 1 (it said: {refused})")


def in_step_venues(samples: Samples, symbols: Sequence[str]) -> dict[str, set[str]]:
    """The venues in step for each symbol, from ``orderbook_exchange_in_step``.

    Samples labelled ``symbol`` count for that symbol. A server that follows one symbol labels them by exchange
    only: then they are the default symbol's (``symbols[0]``)."""
    rows = [(dict(labels), value) for labels, value in samples.labelled("orderbook_exchange_in_step").items()]
    by_symbol = any("symbol" in labels for labels, _ in rows)
    found: dict[str, set[str]] = {symbol: set() for symbol in symbols}
    for labels, value in rows:
        symbol = labels.get("symbol") if by_symbol else symbols[0]
        if value == 1 and symbol in found:
            found[symbol].add(labels.get("exchange", ""))
    return found


def not_in_step(samples: Samples, symbols: Sequence[str]) -> list[str]:
    """``venue/symbol`` for every pair not in step yet (every symbol is expected on every venue)."""
    found = in_step_venues(samples, symbols)
    return [f"{venue}/{symbol}" for symbol in symbols for venue in VENUES if venue not in found[symbol]]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (its own, not its children's), from /proc/<pid>/stat."""
    # The command name (field 2) may hold spaces: count fields from after its closing parenthesis (field 3).
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _waited_ns(schedstat: Path) -> int:
    """How long a thread has waited, ready to run, for a core: the second field of a schedstat file, in ns."""
    return int(schedstat.read_text().split()[1])


def run_queue_seconds(pid: int) -> float:
    """How long the process's main thread has waited for a core (/proc/<pid>/schedstat)."""
    return _waited_ns(Path(f"/proc/{pid}/schedstat")) / 1e9


def threads_run_queue_seconds(pid: int) -> float:
    """How long the process's threads, those alive now, have waited for a core in all (each thread's
    /proc/<pid>/task/<tid>/schedstat): the client's grpc.aio hands a message through several of its threads."""
    waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            waited += _waited_ns(task / "schedstat")
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            continue
    return waited / 1e9


def peak_rate(points: Sequence[tuple[float, float]], span: float = 1.0) -> float | None:
    """The highest rate of a counter sampled as (time, value): over each stretch from one sample to the first
    at least ``span`` seconds later; None with fewer than two samples that far apart."""
    best = None
    for i, (t0, v0) in enumerate(points):
        for t1, v1 in points[i + 1:]:
            if t1 - t0 >= span:
                rate = (v1 - v0) / (t1 - t0)
                best = rate if best is None or rate > best else best
                break
    return best


def bucket_quantile_ms(before: Samples, after: Samples, name: str, quantile: float = 0.99) -> float | None:
    """The upper bound, in ms, of the histogram bucket holding the ``quantile`` of what ``name`` observed between
    two scrapes (None: nothing observed, or past the last finite bucket)."""
    def cumulative(samples: Samples) -> dict[float, float]:
        return {float(le): value for (le,), value in samples.by_label(f"{name}_bucket", "le").items()}

    start, end = cumulative(before), cumulative(after)
    counts = sorted((le, end[le] - start.get(le, 0.0)) for le in end)
    total = counts[-1][1] if counts else 0.0
    if not total:
        return None
    bound = next(le for le, count in counts if count >= quantile * total)
    return None if bound == float("inf") else bound * 1000


def _sim_counter(stats: dict[str, Any], venue: str, name: str) -> float:
    return float(stats[venue].get(name, 0))


def _sim_market_total(stats: dict[str, Any], venue: str, name: str) -> float:
    """A per-market counter (``frames_sent``, ``events``) summed over the venue's symbols: the venue's own entry
    holds only its default symbol's."""
    return float(sum(market.get(name, 0) for market in stats[venue]["markets"].values()))


def not_deepened(samples: Samples, symbols: Sequence[str]) -> list[str]:
    """The symbols whose Binance book has not been deepened yet (``orderbook_book_deepenings_total``)."""
    deepened = {dict(labels).get("symbol") for labels, value in samples.labelled(
        "orderbook_book_deepenings_total", exchange="binance", result="deepened").items() if value >= 1}
    return [symbol for symbol in symbols if symbol not in deepened]


def rate_limited(samples: Samples, venue: str) -> float:
    """429 and 418 answers the server counted from ``venue`` (``orderbook_snapshot_errors_total``)."""
    return sum(samples.value("orderbook_snapshot_errors_total", exchange=venue, status=status)
               for status in ("429", "418"))


def _wait_all_in_step(stack: Stack, symbols: Sequence[str],
                      timeout: float) -> tuple[float, float, list[dict[str, Any]]]:
    """Poll until every symbol is in step on every venue, and on until every Binance book has been deepened;
    (seconds since launch to each, the samples taken meanwhile)."""
    server, control = stack.server, stack.sim.control
    timeline: list[dict[str, Any]] = []
    deadline = server.launched_at + timeout
    missing: list[str] = []
    in_step_at: float | None = None
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.log_tail()}")
        samples, sim, now = server.metrics(), control.stats(), time.monotonic()
        missing = not_in_step(samples, symbols)
        shallow = not_deepened(samples, symbols)
        timeline.append({
            "t": now - server.launched_at,
            "not_in_step": len(missing),
            "not_deepened": len(shallow),
            "snapshots": {venue: samples.value("orderbook_snapshot_fetch_duration_seconds_count", exchange=venue)
                          for venue in VENUES},
            "snapshot_errors": {venue: samples.value("orderbook_snapshot_errors_total", exchange=venue)
                                for venue in VENUES},
            "rest_requests": {venue: _sim_counter(sim, venue, "rest_requests") for venue in VENUES},
            "rest_rate_limited": {venue: _sim_counter(sim, venue, "rest_rate_limited") for venue in VENUES},
            "rate_limited_counted": {venue: rate_limited(samples, venue) for venue in VENUES},
        })
        if not missing and in_step_at is None:
            in_step_at = now - server.launched_at
        if in_step_at is not None and not shallow:
            return in_step_at, now - server.launched_at, timeline
        if now >= deadline:
            what = (f"{len(missing)} of {len(symbols) * len(VENUES)} venue/symbol books not in step" if missing else
                    f"{len(shallow)} of {len(symbols)} Binance books not deepened")
            raise RuntimeError(f"{what} {timeout:.0f} s after launch (first: {', '.join((missing or shallow)[:5])}):"
                               f"\n{server.log_tail()}")
        time.sleep(POLL_SECONDS)


def _pacing(timeline: list[dict[str, Any]], startup: float) -> dict[str, dict[str, Any]]:
    """Per venue: snapshot requests until all were in step (``startup`` s after launch), their mean and peak rate,
    and the refusals they earned until all were deepened."""
    pacing = {}
    last = timeline[-1]
    in_step = next(point for point in timeline if point["t"] >= startup)
    for venue in VENUES:
        requests = in_step["rest_requests"][venue]
        pacing[venue] = {
            "requests": requests,
            "snapshots_fetched": last["snapshots"][venue],
            "requests_per_s": requests / startup if startup > 0 else None,
            "peak_requests_per_s": peak_rate([(p["t"], p["rest_requests"][venue]) for p in timeline
                                              if p["t"] <= startup]),
            "rate_limited": last["rest_rate_limited"][venue],
            "rate_limited_counted": last["rate_limited_counted"][venue],
            "snapshot_errors": last["snapshot_errors"][venue],
        }
    return pacing


def run_step(options: Options, count: int, window: float, settle: float) -> dict[str, Any]:
    """One server following ``count`` symbols: start-up, then the steady window (see the module's docstring)."""
    symbols = symbol_names(count)
    _check_server_takes(count)
    sim_args = ["--symbol", ",".join(symbols), "--levels", str(LEVELS), "--binance-rate", str(BINANCE_RATE),
                "--bitstamp-rate", str(BITSTAMP_RATE), "--probe-every", str(PROBE_EVERY)]
    server_args = ["--symbol", ",".join(symbols)]
    timeout = STARTUP_BASE_SECONDS + STARTUP_PER_SYMBOL_SECONDS * count
    with Stack(options.workdir, sim_args, server_args, name=f"server-symbols-{count}",
               sim_start_timeout=15.0 + 0.05 * count) as stack:
        startup, deepened, timeline = _wait_all_in_step(stack, symbols, timeout)
        server: Server = stack.server
        clients = ClientGroup(server.target, processes=1, streams_each=1)
        try:
            clients.wait_ready()
            time.sleep(settle)
            sim0, srv0 = stack.sim.control.stats(), server.metrics()
            client_pid = clients.procs[0].pid
            waited0, client_waited0 = run_queue_seconds(server.pid), threads_run_queue_seconds(client_pid)
            sim_cpu0, cpu0, t0 = cpu_seconds(stack.sim.pid), cpu_seconds(server.pid), time.monotonic()
            time.sleep(window)
            cpu1, sim_cpu1, t1 = cpu_seconds(server.pid), cpu_seconds(stack.sim.pid), time.monotonic()
            waited1, client_waited1 = run_queue_seconds(server.pid), threads_run_queue_seconds(client_pid)
            memory = server.memory()
            sim1, srv1 = stack.sim.control.stats(), server.metrics()
            results = clients.finish()
        finally:
            clients.kill()
        records = stack.sim.control.probe_records()
    elapsed = t1 - t0
    sent_probes = [(key, exchange, sent_at) for key, exchange, sent_at, _ in records]
    latency = probe_stats(sent_probes, results, 1, t0, t1 - IN_FLIGHT).summary()
    simulator_waits = sorted((sent_at - queued_at) * 1000 for _, _, sent_at, queued_at in records
                             if t0 <= sent_at < t1 - IN_FLIGHT)
    frames = {venue: {"sent_per_s": (_sim_market_total(sim1, venue, "frames_sent")
                                     - _sim_market_total(sim0, venue, "frames_sent")) / elapsed,
                      "received_per_s": (srv1.value("orderbook_frames_received_total", exchange=venue)
                                         - srv0.value("orderbook_frames_received_total", exchange=venue)) / elapsed}
              for venue in VENUES}
    return {
        "symbols": count, "first_symbols": symbols[:5], "levels": LEVELS,
        "rates_per_symbol": {"binance": BINANCE_RATE, "bitstamp": BITSTAMP_RATE},
        "startup_s": startup, "deepened_s": deepened, "pacing": _pacing(timeline, startup),
        "window_s": elapsed, "cpu_cores": (cpu1 - cpu0) / elapsed, "run_queue_share": (waited1 - waited0) / elapsed,
        "client_run_queue_share": (client_waited1 - client_waited0) / elapsed,
        "simulator_cpu_cores": (sim_cpu1 - sim_cpu0) / elapsed,
        "rss_mb": memory["VmRSS"], "rss_peak_mb": memory["VmHWM"],
        "latency": latency, "frames": frames,
        "frame_to_publish_p99_ms": bucket_quantile_ms(srv0, srv1, "orderbook_frame_to_publish_seconds"),
        "publish_to_send_p99_ms": bucket_quantile_ms(srv0, srv1, "orderbook_publish_to_send_seconds"),
        "simulator_wait_p99_ms": simulator_waits[int(0.99 * (len(simulator_waits) - 1))] if simulator_waits else None,
        "not_in_step_after": not_in_step(srv1, symbols)[:20],
        "reconnects": srv1.value("orderbook_exchange_reconnects_total")
        - srv0.value("orderbook_exchange_reconnects_total"),
        "rebuilds": srv1.value("orderbook_book_rebuilds_total") - srv0.value("orderbook_book_rebuilds_total"),
        "client_errors": sum(result["error_count"] for result in results),
        "startup_timeline": [*timeline[:-1:max(1, len(timeline) // 60)], timeline[-1]],  # ~60 polls, the last
    }


def _windows(options: Options) -> tuple[float, float]:
    """(steady window, settle before it) in seconds. A minute: some 780 probes, so that a p99 rests on the worst 8
    of them, not on the worst 3 (20 s gave one-symbol p99s of 1.69-2.32 ms run to run, on a quiet machine)."""
    return options.seconds(60, 4), options.seconds(3, 1)


def step_figures(step: dict[str, Any], baseline_rss: float | None) -> list[Figure]:
    """The figures of one step; ``baseline_rss``: a one-symbol server's RSS (MB), None when this step is it."""
    count = step["symbols"]
    prefix = f"{count} sym: "
    pacing = step["pacing"]
    added = (step["rss_mb"] - baseline_rss) / (count - 1) if baseline_rss is not None and count > 1 else None
    figures = [
        Figure(prefix + "start -> all in step", step["startup_s"], "s",
               note="server launch -> orderbook_exchange_in_step 1 for every symbol on both venues"),
        Figure(prefix + "start -> all deepened", step.get("deepened_s"), "s",
               note="server launch -> every Binance book deepened to the 1,000 levels kept, in step throughout"),
    ]
    for venue in VENUES:
        figures += [
            Figure(prefix + f"{venue} snapshot req/s, mean", pacing[venue]["requests_per_s"], "req/s",
                   note="snapshot requests the simulator received from launch to all in step, over that time"),
            Figure(prefix + f"{venue} snapshot req/s, peak", pacing[venue]["peak_requests_per_s"], "req/s",
                   note="the fastest stretch of at least a second (polled every 0.5 s)"),
        ]
    figures += [
        Figure(prefix + "snapshot errors at start-up", sum(pacing[venue]["snapshot_errors"] for venue in VENUES),
               "count", note="orderbook_snapshot_errors_total, both venues, until all deepened"),
        Figure(prefix + "429/418 at start-up", sum(max(pacing[venue]["rate_limited"],
                                                       pacing[venue].get("rate_limited_counted", 0))
                                                   for venue in VENUES), "count", 0, "lower",
               note="until all deepened: the larger of the simulator's rest_rate_limited and the server's "
                    "orderbook_snapshot_errors_total{status=429|418}, both venues: any means pacing too fast"),
        Figure(prefix + "book process CPU", step["cpu_cores"], "cores",
               CPU_TARGET if count <= CPU_TARGET_SYMBOLS else None, "lower" if count <= CPU_TARGET_SYMBOLS else None,
               note="utime+stime from /proc over the steady window, all symbols in step, one client"),
        Figure(prefix + "book process waiting for a core", step.get("run_queue_share"), "share",
               note="its hub thread ready to run but not running (/proc schedstat), over the window: the host's "
                    "load; a p99 that moves with it is the machine's, not the process's"),
        Figure(prefix + "client process waiting for a core", step.get("client_run_queue_share"), "share",
               note="the one client's threads ready to run but not running, summed (/proc schedstat), over the "
                    "window: a summary the book process has written waits for them too"),
        Figure(prefix + "simulator CPU", step["simulator_cpu_cores"], "cores",
               note="the simulator shares the machine's cores with the book process"),
        Figure(prefix + "RSS", step["rss_mb"], "MB"),
        Figure(prefix + "RSS / symbols", step["rss_mb"] / count, "MB", note="the whole process over N"),
    ]
    if count > 1:
        figures.append(Figure(prefix + "RSS per added symbol", added, "MB", RSS_PER_SYMBOL_TARGET_MB, "lower",
                              note="(RSS - a one-symbol server's RSS) / (N - 1)"))
    figures += [
        Figure(prefix + "p50 frame->client", step["latency"]["p50_ms"], "ms"),
        Figure(prefix + "p99 frame->client", step["latency"]["p99_ms"], "ms", P99_TARGET_MS, "lower",
               note="one BookSummary client of the default symbol, every symbol live; on Binance it comes last of "
                    "each 100-ms beat's burst"),
        Figure(prefix + "p99 frame->publish in the book process", step.get("frame_to_publish_p99_ms"), "ms",
               note="the bucket (orderbook_frame_to_publish_seconds, over the window) holding its p99: frame read "
                    "-> the summary showing it published"),
        Figure(prefix + "p99 publish->send in the book process", step.get("publish_to_send_p99_ms"), "ms",
               note="the bucket (orderbook_publish_to_send_seconds) holding its p99: published -> handed to the "
                    "client's stream"),
        Figure(prefix + "p99 simulator's own wait", step.get("simulator_wait_p99_ms"), "ms",
               note="a probe queued -> its frame written by the simulator (busy with other markets and their "
                    "snapshots): before the send time, so not in frame->client"),
    ]
    return figures


def symbols(options: Options, counts: Iterable[int]) -> tuple[list[Figure], dict[str, Any]]:
    """One step of each of ``counts`` symbols, after a one-symbol step (the RSS baseline, and a reference)."""
    counts = tuple(counts)
    window, settle = _windows(options)
    _check_server_takes(max(counts))  # before the one-symbol step, not after it
    steps = [run_step(options, count, window, settle) for count in sorted({1, *counts})]
    baseline = steps[0]["rss_mb"]
    figures = [figure for step in steps for figure in step_figures(step, None if step is steps[0] else baseline)]
    figures += [p99_ratio_figure(step, steps[0]) for step in steps[1:]]
    return figures, {"steps": steps}


def p99_ratio(step: dict[str, Any], alone: dict[str, Any]) -> float | None:
    """A step's one-symbol client p99 over the p99 of the one-symbol step of the same run (None: either missing)."""
    p99, reference = step["latency"]["p99_ms"], alone["latency"]["p99_ms"]
    return p99 / reference if p99 is not None and reference else None


def p99_ratio_figure(step: dict[str, Any], alone: dict[str, Any]) -> Figure:
    """The issue's many-symbols target as a ratio to its reference measured in the same run."""
    return Figure(f"{step['symbols']} sym: p99 frame->client / 1 sym's", p99_ratio(step, alone), "x",
                  P99_RATIO_TARGET, "lower",
                  note="the default symbol's client p99 beside every symbol, over its p99 when the server follows it "
                       "alone (the first step of this run)")


def symbols_ramp(options: Options, counts: Iterable[int]) -> tuple[list[Figure], dict[str, Any]]:
    """Step the symbol count up until the one-symbol client's p99 passes the target: how many one process holds.

    Stops at the first step over the target (a larger one would only take longer to say the same); the steps not
    run keep their rows, with no value, so repeated runs line up."""
    window, settle = _windows(options)
    ordered = sorted(set(counts))
    _check_server_takes(ordered[-1])
    steps: list[dict[str, Any]] = []
    for count in ordered:
        step = run_step(options, count, window, settle)
        steps.append(step)
        p99 = step["latency"]["p99_ms"]
        if p99 is None or p99 > P99_TARGET_MS:
            break
    measured = {step["symbols"]: step for step in steps}
    held = 0
    for step in steps:
        p99 = step["latency"]["p99_ms"]
        if p99 is None or p99 > P99_TARGET_MS:
            break
        held = step["symbols"]
    all_passed = len(steps) == len(ordered) and held == ordered[-1]
    figures = [
        Figure("symbols held with p99 <= 5 ms", held, "symbols",
               note=(f"every step passed: at least {held}" if all_passed else
                     f"largest step before p99 passed {P99_TARGET_MS:g} ms (steps: "
                     f"{', '.join(map(str, ordered))})")),
    ]
    for count in ordered:
        run = measured.get(count)
        figures += [
            Figure(f"{count} sym: p99 frame->client", run["latency"]["p99_ms"] if run else None, "ms",
                   note="" if run else "not run: an earlier step was over the target"),
            Figure(f"{count} sym: book process CPU", run["cpu_cores"] if run else None, "cores"),
            Figure(f"{count} sym: start -> all in step", run["startup_s"] if run else None, "s"),
        ]
    return figures, {"steps": steps, "held": held, "all_passed": all_passed}
