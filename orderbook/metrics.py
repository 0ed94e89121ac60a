"""Prometheus metrics, all in one place, on an injected registry (tests use a fresh ``CollectorRegistry``).

Events that are rare (connects, rebuilds, bad frames, snapshot fetches) update prometheus-client metrics when
they happen. Values that change on every frame (frame counts, book depth, the merged spread, the per-frame
latency histograms) are plain attributes of the objects that own them, read only when Prometheus scrapes.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from orderbook.merge import MergedTop
from orderbook.prices import to_float

# Sub-millisecond to seconds: the service's own latency lives in the first buckets, exchange lag in the last.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LatencyHistogram:
    """A Prometheus-style histogram without a lock: observed from one gevent hub, read at scrape time."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1  # first bucket whose upper bound is >= seconds
        self.total += seconds

    def add(self, other: LatencyHistogram) -> None:
        if other.bounds != self.bounds:
            raise ValueError("cannot add histograms with different buckets")
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total

    def cumulative_buckets(self) -> list[tuple[str, int]]:
        """``(le, count of observations <= le)`` for every bucket, as the exposition format wants them."""
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        return buckets

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        return HistogramMetricFamily(name, documentation, buckets=self.cumulative_buckets(), sum_value=self.total)


@dataclass(slots=True)
class FeedStats:
    """A venue's counters updated on every frame: plain attributes, cheap to write, exported at scrape time."""

    frames: int = 0
    frame_bytes: int = 0
    last_frame_at: float | None = None  # time.time() of the last frame received
    event_age: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Exchange event timestamp (exchange clock) to applied to the book (local clock), per diff."""
    lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    """How far behind the venue each diff read left its connection's books, the clocks' constant offset taken
    out (:mod:`orderbook.feed.lag`)."""


@dataclass(slots=True)
class SymbolStats:
    """One symbol's book at one venue, read at scrape time."""

    bid_levels: Callable[[], int] = field(default=lambda: 0)
    ask_levels: Callable[[], int] = field(default=lambda: 0)
    lag: Callable[[], float | None] = field(default=lambda: None)
    """Seconds the book is behind the venue (its connection's lag); None while no connection carries it."""
    deepening: Callable[[], bool] = field(default=lambda: False)
    """Whether the book is in step on a first snapshot sized to what is served, waiting to be deepened."""
    last_audit_at: float | None = None
    """time.time() when the last drift audit compared the book (whatever it found)."""


class VenueMetrics:
    """The metrics of one venue's feed, labels bound once (``labels()`` costs microseconds per call)."""

    def __init__(self, metrics: Metrics, exchange: str) -> None:
        self.exchange = exchange
        self.stats = FeedStats()
        self._m = metrics
        self._symbols: dict[str, SymbolMetrics] = {}
        metrics._feeds[exchange] = (self.stats, self._symbols)
        self._connected = metrics.connected.labels(exchange)
        self._connects = metrics.connects.labels(exchange)
        self._snapshot_seconds = metrics.snapshot_seconds.labels(exchange)
        self._snapshots_taken = metrics.snapshots_taken.labels(exchange)
        self._event_age = self.stats.event_age.observe
        self._connections = 0
        self._connected.set(0)

    def symbol(self, symbol: str) -> SymbolMetrics:
        """The metrics of ``symbol``'s book at this venue (one object per symbol)."""
        if symbol not in self._symbols:
            self._symbols[symbol] = SymbolMetrics(self._m, self.exchange, symbol)
        return self._symbols[symbol]

    def set_connected(self, connected: bool) -> None:
        """One connection more (True) or fewer (False): the gauge counts the venue's open connections."""
        self._connections += 1 if connected else -1
        self._connected.set(self._connections)
        if connected:
            self._connects.inc()

    def reconnect(self, reason: str) -> None:
        self._m.reconnects.labels(self.exchange, reason).inc()

    def bad_frame(self, reason: str) -> None:
        self._m.bad_frames.labels(self.exchange, reason).inc()

    def snapshot_fetched(self, seconds: float) -> None:
        self._snapshot_seconds.observe(seconds)

    def snapshot_error(self, status: str) -> None:
        self._m.snapshot_errors.labels(self.exchange, status).inc()

    def snapshot_taken(self) -> None:
        self._snapshots_taken.inc()

    def event_age(self, seconds: float) -> None:
        self._event_age(seconds)

    def ignored_row(self, reason: str) -> None:
        self._m.ignored_rows.labels(self.exchange, reason).inc()

    def fell_behind(self) -> None:
        """A connection went past the lag bound: its books left the merged book until it catches up."""
        self._m.behind.labels(self.exchange).inc()


class SymbolMetrics:
    """The metrics of one symbol's book at one venue. The ``symbol`` label's values are the configured symbols."""

    def __init__(self, metrics: Metrics, exchange: str, symbol: str) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.stats = SymbolStats()
        self._m = metrics
        self._in_step = metrics.in_step.labels(exchange, symbol)
        self._listed = metrics.listed.labels(exchange, symbol)
        self._stale = metrics.stale_diffs.labels(exchange, symbol)
        self._in_step.set(0)
        self._listed.set(1)

    def set_in_step(self, in_step: bool) -> None:
        self._in_step.set(int(in_step))

    def set_listed(self, listed: bool) -> None:
        self._listed.set(int(listed))

    def rebuild(self, reason: str) -> None:
        self._m.rebuilds.labels(self.exchange, self.symbol, reason).inc()

    def stale_diff(self) -> None:
        self._stale.inc()

    def audit(self, result: str, divergent_levels: int = 0) -> None:
        """One drift audit: ``match``, ``divergent`` (with how many levels differed), ``skipped`` or ``deferred``."""
        self._m.audits.labels(self.exchange, self.symbol, result).inc()
        if divergent_levels:
            self._m.audit_divergent_levels.labels(self.exchange, self.symbol).inc(divergent_levels)
        if result in ("match", "divergent"):
            self.stats.last_audit_at = time.time()

    def deepening(self, result: str) -> None:
        """One attempt to deepen a book in step on a shallow first snapshot: ``deepened``, ``divergent`` or
        ``skipped`` (its comparison with the deeper snapshot is counted as an audit too)."""
        self._m.deepenings.labels(self.exchange, self.symbol, result).inc()


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._feeds: dict[str, tuple[FeedStats, dict[str, SymbolMetrics]]] = {}
        self._state_sources: list[Callable[[], Iterable[Metric]]] = []
        ex = ["exchange"]
        book = ["exchange", "symbol"]
        self.connected = Gauge(
            "orderbook_exchange_connected", "WebSocket connections open to the exchange", ex, registry=registry
        )
        self.in_step = Gauge(
            "orderbook_exchange_in_step", "1 while the exchange's book of the symbol is in step and served", book,
            registry=registry,
        )
        self.listed = Gauge(
            "orderbook_exchange_lists_symbol", "1 if the exchange lists the symbol and it trades there; 0: it does "
            "not (or not now: a halt, a break, a disabled market), and the symbol is served without it", book,
            registry=registry,
        )
        self.connects = Counter(
            "orderbook_exchange_connects_total", "WebSocket connections opened", ex, registry=registry
        )
        self.reconnects = Counter(
            "orderbook_exchange_reconnects_total", "Connections ended and retried, by reason", [*ex, "reason"],
            registry=registry,
        )
        self.rebuilds = Counter(
            "orderbook_book_rebuilds_total", "Books discarded and rebuilt from a snapshot, by reason",
            [*book, "reason"], registry=registry,
        )
        self.bad_frames = Counter(
            "orderbook_bad_frames_total", "Frames that could not be used, by reason", [*ex, "reason"],
            registry=registry,
        )
        self.stale_diffs = Counter(
            "orderbook_stale_diffs_total", "Diffs already reflected in the book, ignored", book, registry=registry
        )
        self.snapshot_seconds = Histogram(
            "orderbook_snapshot_fetch_duration_seconds", "REST request time (snapshots and symbol listings)", ex,
            buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.snapshot_errors = Counter(
            "orderbook_snapshot_errors_total", "Failed snapshot requests, by HTTP status or 'network'",
            [*ex, "status"], registry=registry,
        )
        self.snapshots_taken = Counter(
            "orderbook_snapshots_taken_total", "Snapshot answers the service is done with: loaded (or found older "
            "than the stream), compared by an audit or a deepening, or refused (an error, an unusable body)", ex,
            registry=registry,
        )
        self.ignored_rows = Counter(
            "orderbook_ignored_rows_total", "Rows a venue should not send (zero price, null), dropped from a snapshot "
            "or diff whose other rows were kept, by reason", [*ex, "reason"], registry=registry,
        )
        self.audits = Counter(
            "orderbook_audits_total", "Drift audits (a fresh snapshot compared with the live book), by result: "
            "match, divergent (the book was rebuilt), skipped (the book could not be compared with the snapshot) or "
            "deferred (the book was behind the venue: audited again once it has caught up)",
            [*book, "result"], registry=registry,
        )
        self.deepenings = Counter(
            "orderbook_book_deepenings_total", "Books in step on a shallow first snapshot (sized to --depth) rebuilt "
            "in place on a deeper one and the diffs since, by result: deepened, divergent (the shallow book differed "
            "from the deeper snapshot: rebuilt; counted as a divergent audit too) or skipped (the snapshot could not "
            "be used: tried again later)",
            [*book, "result"], registry=registry,
        )
        self.behind = Counter(
            "orderbook_exchange_behind_total", "Times a connection to the exchange fell more than --max-lag behind "
            "it: its books left the merged book until it caught up", ex, registry=registry,
        )
        self.audit_divergent_levels = Counter(
            "orderbook_audit_divergent_levels_total", "Price levels a drift audit found different from the venue's",
            book, registry=registry,
        )
        self.frame_to_publish = LatencyHistogram()
        """Frame received to the summary reflecting it published."""
        registry.register(_StateCollector(self))
        ProcessCollector(registry=registry)  # process_open_fds, process_resident_memory_bytes, ...

    def exchange(self, name: str) -> VenueMetrics:
        return VenueMetrics(self, name)

    def add_state_source(self, source: Callable[[], Iterable[Metric]]) -> None:
        """Register a function that yields metric families at scrape time."""
        self._state_sources.append(source)


def merged_book_families(last: Callable[[], Iterable[tuple[str, MergedTop | None]]]) -> Callable[[], Iterable[Metric]]:
    """Spread and best prices of each symbol's served book, read at scrape time."""

    def collect() -> Iterable[Metric]:
        sym = ["symbol"]
        spread = GaugeMetricFamily("orderbook_spread", "Best ask minus best bid of the served merged book", labels=sym)
        best_bid = GaugeMetricFamily("orderbook_best_bid", "Best bid price of the served merged book", labels=sym)
        best_ask = GaugeMetricFamily("orderbook_best_ask", "Best ask price of the served merged book", labels=sym)
        for symbol, top in last():
            if top is not None and top.spread is not None:
                spread.add_metric([symbol], to_float(top.spread))
            if top is not None and top.bids:
                best_bid.add_metric([symbol], to_float(top.bids[0].price))
            if top is not None and top.asks:
                best_ask.add_metric([symbol], to_float(top.asks[0].price))
        return [spread, best_bid, best_ask]

    return collect


class _StateCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        frames = CounterMetricFamily("orderbook_frames_received", "WebSocket frames received", labels=["exchange"])
        frame_bytes = CounterMetricFamily(
            "orderbook_frames_received_bytes", "WebSocket payload bytes received", labels=["exchange"]
        )
        age = GaugeMetricFamily(
            "orderbook_last_frame_age_seconds", "Time since the exchange's last frame", labels=["exchange"]
        )
        levels = GaugeMetricFamily(
            "orderbook_book_levels", "Price levels in the exchange's book of the symbol",
            labels=["exchange", "symbol", "side"]
        )
        event_age = HistogramMetricFamily(
            "orderbook_exchange_event_to_applied_seconds",
            "Exchange event timestamp (exchange clock) to applied to the book (local clock)", labels=["exchange"]
        )
        audit_age = GaugeMetricFamily(
            "orderbook_audit_last_age_seconds", "Time since the exchange's book of the symbol was last audited",
            labels=["exchange", "symbol"]
        )
        lag = HistogramMetricFamily(
            "orderbook_exchange_lag_seconds", "How far behind the exchange each diff read left its connection's "
            "books: applied (local clock) minus the event's time (exchange clock), less the lowest such difference "
            "of the last minute (the clocks' constant offset)", labels=["exchange"]
        )
        book_lag = GaugeMetricFamily(
            "orderbook_book_lag_seconds", "How far behind the exchange its book of the symbol is now (its "
            "connection's lag); past --max-lag the book is not served", labels=["exchange", "symbol"]
        )
        deepening = GaugeMetricFamily(
            "orderbook_book_deepening", "1 while the exchange's book of the symbol is in step on a first snapshot "
            "sized to --depth, waiting to be deepened to the levels kept", labels=["exchange", "symbol"]
        )
        now = time.time()
        for exchange, (stats, symbols) in self._metrics._feeds.items():
            frames.add_metric([exchange], stats.frames)
            frame_bytes.add_metric([exchange], stats.frame_bytes)
            if stats.last_frame_at is not None:
                age.add_metric([exchange], max(0.0, now - stats.last_frame_at))
            event_age.add_metric([exchange], stats.event_age.cumulative_buckets(), stats.event_age.total)
            lag.add_metric([exchange], stats.lag.cumulative_buckets(), stats.lag.total)
            for symbol, book in symbols.items():
                if (seconds := book.stats.lag()) is not None:
                    book_lag.add_metric([exchange, symbol], seconds)
                levels.add_metric([exchange, symbol, "bid"], book.stats.bid_levels())
                levels.add_metric([exchange, symbol, "ask"], book.stats.ask_levels())
                deepening.add_metric([exchange, symbol], int(book.stats.deepening()))
                if book.stats.last_audit_at is not None:
                    audit_age.add_metric([exchange, symbol], max(0.0, now - book.stats.last_audit_at))
        yield from (frames, frame_bytes, age, levels, event_age, lag, book_lag, deepening, audit_age)
        yield self._metrics.frame_to_publish.family(
            "orderbook_frame_to_publish_seconds", "Frame received to the summary reflecting it published")
        for source in self._metrics._state_sources:
            yield from source()
