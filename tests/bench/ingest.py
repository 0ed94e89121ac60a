"""Scenario 1, ingest in process: parse -> sync -> book -> merged top-N -> publish, no sockets.

:class:`Pipeline` does per frame what the server does per frame (``ExchangeFeed._read``/``_apply`` and
``Application._book_changed``/``_publish``), with the real objects: the protocols and their syncs, the
ConsolidatedBook (with the gevent lock a patched process gives it), BookPublisher, encode_summary, the
SummaryBroadcaster, and the per-frame metrics. Only the socket read and the sends to clients are missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gevent.thread import allocate_lock
from prometheus_client import CollectorRegistry

from orderbook.book import OrderBook
from orderbook.consolidated import BookPublisher, ConsolidatedBook
from orderbook.exchanges.messages import BadMessage, BookDiff
from orderbook.exchanges.sync import Outcome
from orderbook.merge import MergedTop
from orderbook.metrics import Metrics
from orderbook.serving.broadcast import SummaryBroadcaster
from orderbook.serving.codec import encode_summary
from tests.bench.ingest_frames import EXCHANGES, SYMBOL, Replay, protocol, recorded, recorded_symbol, simulated
from tests.bench.report import Figure

DEPTHS = (100, 1_000, 5_000)
TARGET_FRAMES_PER_SECOND = 20_000
MAX_DEPTH_GROWTH = 1.25
"""Cost per frame at 5,000 levels over the cost at 100: "does not grow with depth" allows 25 % of noise."""


class Pipeline:
    """One server's book state and the per-frame work on it, fed a :class:`Replay`."""

    def __init__(self, replay: Replay, symbol: str, depth: int = 10) -> None:
        self.metrics = Metrics(CollectorRegistry())
        self.book = ConsolidatedBook(EXCHANGES, depth)
        self.book.lock = allocate_lock()  # what threading.Lock is in the monkey-patched server
        self.broadcaster = SummaryBroadcaster(on_send=self.metrics.publish_to_send.observe)
        self.publisher = BookPublisher(self.book, self._publish)
        self.lanes: dict[str, tuple[Callable[[bytes], Any], Any, Any]] = {}
        self.outcomes: dict[str, int] = {}
        for exchange, snapshot in replay.snapshots.items():
            proto = protocol(exchange, symbol)
            if any(name == exchange for name, _ in replay.frames):
                sync = proto.new_sync()
                sync.on_snapshot(snapshot)
                self.book.attach(exchange, sync.book)
                self.lanes[exchange] = (proto.parse_message, sync, self.metrics.exchange(exchange))
            else:
                static = OrderBook()
                static.load(snapshot.bids, snapshot.asks)
                self.book.attach(exchange, static)
        self._serving = False

    def _publish(self, top: MergedTop) -> None:
        self.broadcaster.publish(encode_summary(top))

    def run(self, frames: list[tuple[str, bytes]]) -> float:
        """Process ``frames``; returns the seconds it took."""
        lanes = self.lanes
        frame = self.frame
        started = time.perf_counter()
        for exchange, payload in frames:
            frame(lanes[exchange], exchange, payload)
        return time.perf_counter() - started

    def frame(self, lane: tuple[Callable[[bytes], Any], Any, Any], name: str, payload: bytes) -> None:
        parse, sync, metrics = lane
        received_at = time.perf_counter()
        stats = metrics.stats
        stats.frames += 1
        stats.frame_bytes += len(payload)
        stats.last_frame_at = time.time()
        try:
            message = parse(payload)
        except BadMessage as error:
            metrics.bad_frame(error.reason)
            return
        if type(message) is not BookDiff:
            return
        book = self.book
        with book.lock:
            outcome = sync.on_diff(message)
            if outcome.breaks_book and book.book(name) is sync.book:
                book.detach(name)
        self.outcomes[outcome.value] = self.outcomes.get(outcome.value, 0) + 1
        if outcome is Outcome.APPLIED:
            metrics.event_age(time.time() - message.event_time)
            self._book_changed(received_at)
        elif outcome is Outcome.STALE:
            metrics.stale_diff()
        elif outcome.breaks_book:
            raise AssertionError(f"{name}: the replay broke the book ({outcome.value}) at {message.first_id}")

    def _book_changed(self, received_at: float) -> None:
        if self.publisher.refresh():
            self.metrics.frame_to_publish.observe(time.perf_counter() - received_at)
        serving = any(self.book.in_step(name) for name in self.book.exchanges)
        if serving != self._serving:
            self._serving = serving


def _run_source(replays: list[Replay], symbol_of: Callable[[Replay], str]) -> dict[str, Any]:
    seconds, frames, published = 0.0, 0, 0
    outcomes: dict[str, int] = {}
    for replay in replays:
        pipeline = Pipeline(replay, symbol_of(replay))
        seconds += pipeline.run(replay.frames)
        frames += len(replay.frames)
        published += pipeline.broadcaster.published_total
        for key, count in pipeline.outcomes.items():
            outcomes[key] = outcomes.get(key, 0) + count
    return {"frames": frames, "seconds": seconds, "frames_per_s": frames / seconds if seconds else None,
            "us_per_frame": seconds / frames * 1e6 if frames else None, "summaries_published": published,
            "outcomes": outcomes}


class IngestSources:
    """Frames prepared once per depth (untimed) and replayed by every repeat."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.depths = (100, 5_000) if quick else DEPTHS
        self._cache: dict[tuple[str, int], list[Replay]] = {}

    def get(self, source: str, depth: int) -> list[Replay]:
        key = (source, depth)
        if key not in self._cache:
            if source == "recorded":
                self._cache[key] = recorded(depth)
            else:
                self._cache[key] = [simulated(depth, 2_000 if self.quick else 15_000)]
        return self._cache[key]

    @staticmethod
    def symbol_of(source: str) -> Callable[[Replay], str]:
        return recorded_symbol if source == "recorded" else (lambda replay: SYMBOL)


def run_once(sources: IngestSources) -> tuple[list[Figure], dict[str, Any]]:
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    for source in ("recorded", "simulated"):
        cost: dict[int, float | None] = {}
        for depth in sources.depths:
            result = _run_source(sources.get(source, depth), sources.symbol_of(source))
            details[f"{source}@{depth}"] = result
            cost[depth] = result["us_per_frame"]
            figures.append(Figure(f"{source} frames/s @{depth} lvls", result["frames_per_s"], "frames/s",
                                  TARGET_FRAMES_PER_SECOND, "higher"))
            figures.append(Figure(f"{source} us/frame @{depth} lvls", result["us_per_frame"], "us"))
        low, high = cost[min(cost)], cost[max(cost)]
        figures.append(Figure(f"{source} cost {max(cost)}/{min(cost)} lvls", high / low if low and high else None,
                              "ratio", MAX_DEPTH_GROWTH, "lower"))
    return figures, details


def profile(sources: IngestSources, out_dir: Path) -> list[Path]:
    """One pass over each source at 1,000 levels (100 in quick mode) under pyinstrument: HTML and text reports."""
    from pyinstrument import Profiler

    depth = 1_000 if 1_000 in sources.depths else min(sources.depths)
    replays = {source: sources.get(source, depth) for source in ("recorded", "simulated")}
    pipelines = [(Pipeline(replay, sources.symbol_of(source)(replay)), replay)
                 for source, source_replays in replays.items() for replay in source_replays]
    profiler = Profiler(interval=0.0002)
    profiler.start()
    for pipeline, replay in pipelines:
        pipeline.run(replay.frames)
    profiler.stop()
    out_dir.mkdir(parents=True, exist_ok=True)
    html, text = out_dir / "ingest.html", out_dir / "ingest.txt"
    html.write_text(profiler.output_html(), encoding="utf-8")
    text.write_text(profiler.output_text(unicode=False, color=False, show_all=False), encoding="utf-8")
    return [html, text]
