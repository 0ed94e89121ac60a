"""Scenario 1, ingest in process: parse -> sync -> book -> merged top-N -> publish, no sockets.

:class:`Pipeline` drives the server's own objects: a real :class:`~orderbook.app.Application` (not started: no
listener, no connection) and a :class:`~orderbook.feed.connection.VenueConnection` of each venue (not run), whose
``read_batch`` is all the work the server does for the frames waiting on a connection (for each frame: count, parse,
route to the symbol, sync, book; then, once a batch, for each symbol whose served top changed: merge, encode,
publish to the broadcaster). The frames all wait, as a backlog on a socket does, each venue's in memory on its own
connection: only the socket reads and the sends are missing. The symbol has a stream open, as a client's would be
(:meth:`Pipeline.read`): a book process holds back the publishes of a symbol nothing reads, and without a reader the
publish path would not be measured at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gevent.thread import allocate_lock

from orderbook.app import Application
from orderbook.book import VenueBook
from orderbook.config import load_config
from orderbook.exchanges.sync import Outcome
from orderbook.feed.connection import Session, VenueConnection
from orderbook.recording.tap import RecordingStream
from tests.bench.ingest_frames import SYMBOL, Replay, recorded, recorded_symbol, simulated
from tests.bench.report import Figure
from tests.support.fake_venue import FakeStream

DEPTHS = (100, 1_000, 5_000)
TARGET_FRAMES_PER_SECOND = 20_000
MAX_DEPTH_GROWTH = 1.25
"""Cost per frame at 5,000 levels over the cost at 100: "does not grow with depth" allows 25 % of noise."""


class Pipeline:
    """One server's book state, fed a :class:`Replay` through the server's own per-frame code."""

    def __init__(self, replay: Replay, symbol: str, depth: int = 10, record: tuple[str, ...] = ()) -> None:
        """``record``: ``--record`` flags; each venue's frames are then recorded as a venue connection's are (the
        recorder is not started here: the caller starts and stops ``app.recorder``)."""
        config = load_config(["--symbol", symbol, "--depth", str(depth), "--metrics-addr", "off",
                              "--grpc-addr", "127.0.0.1:0", *record], {})
        self.app = Application(config)
        book = self.app.consolidated[config.symbol]
        book.lock = allocate_lock()  # what threading.Lock is in the monkey-patched server
        self.served = self.app.served
        feeds = {feed.name: feed for feed in self.app.feeds}
        self.lanes: dict[str, tuple[VenueConnection, Session, FakeStream]] = {}
        for exchange, snapshot in replay.snapshots.items():
            feed = feeds[exchange]
            if any(name == exchange for name, _ in replay.frames):
                (connection,) = feed.split(feed.symbols)
                stream = FakeStream(exchange)
                recorder = self.app.recorder
                session = connection.new_session(stream if recorder is None else
                                                 RecordingStream(stream, recorder, recorder.new_connection()))
                if session.streams[config.symbol].install_snapshot(snapshot) is not Outcome.APPLIED:
                    raise AssertionError(f"{exchange}: the replay's snapshot does not fit its frames")
                self.lanes[exchange] = (connection, session, stream)
            else:  # an exchange with no frames in this replay: a static book that is served all the same
                static = VenueBook()
                static.load(snapshot.bids, snapshot.asks)
                with book.lock:
                    book.attach(exchange, static)
        self.stream = self.read(config.symbol)

    def read(self, symbol: str) -> Iterator[bytes]:
        """A client's stream of ``symbol`` opened, its first summary taken: from now on every change of the
        symbol's book is merged, encoded and published, as for a symbol that a gRPC client reads. (The stream
        sends nothing more: there is no client.)"""
        if self.served.summary(symbol) is None:  # else the stream would wait for one
            raise AssertionError(f"{symbol}: no summary to read, no snapshot having changed its book")
        stream = self.served.stream(symbol, 0, lambda: True)
        next(stream)
        return stream

    def run(self, frames: list[tuple[str, bytes]]) -> float:
        """Process ``frames``, all waiting on their venues' connections before the clock starts, a batch at a time,
        the venues taking turns as their readers do; returns the seconds it took."""
        for exchange, payload in frames:
            self.lanes[exchange][2].push(payload)
        clock = time.perf_counter
        started = clock()
        while busy := [(connection, session) for connection, session, stream in self.lanes.values()
                       if stream.waiting()]:
            for connection, session in busy:
                connection.read_batch(session, session.ending.ended)
        return clock() - started


def _run_source(replays: list[Replay], symbol_of: Callable[[Replay], str]) -> dict[str, Any]:
    seconds, frames, published = 0.0, 0, 0
    for replay in replays:
        pipeline = Pipeline(replay, symbol_of(replay))
        seconds += pipeline.run(replay.frames)
        frames += len(replay.frames)
        published += pipeline.served.published_total
    return {"frames": frames, "seconds": seconds, "frames_per_s": frames / seconds if seconds else None,
            "us_per_frame": seconds / frames * 1e6 if frames else None, "summaries_published": published}


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
