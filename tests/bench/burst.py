"""Scenario burst: a backlog of 20,000 Binance frames, end to end, against the same frames in process.

End to end: the simulator (books of 60, then 1,000 levels a side) and ``bin/run-server`` on loopback, one gRPC client
of ``BookSummary``. Once the served book equals the simulator's truth, the market is paused and the simulator
queues 20,000 events of Binance's default symbol at once (``POST /burst``), the last one a probe that puts a marker
amount at the best bid. Timed from the moment they were queued until the client receives the summary equal to the
truth the burst left, marker included: the frames of a burst per second, as the client sees them. Both clocks are
CLOCK_MONOTONIC on this host.

In process, in the same run: the same number of frames of the simulator's own model at the same depth, written as
the combined stream writes them, through the server's own objects (:class:`tests.bench.ingest.Pipeline`: parse,
sync, book, batch, merge, encode, publish; no sockets). The ratio end to end / in process is what the sockets, the
WebSocket frames, the reader's turns and the gRPC send cost on top: the issue's target is at least 0.8.

``bin/bench --compare REV --service-only --scenario burst`` runs this scenario's harness and simulator on both
sides and REV's ``bin/run-server`` on REV's: how the end-to-end figure compares with a commit that predates the
scenario. (Its in-process figure is then this tree's on both sides.)
"""

from __future__ import annotations

from typing import Any

from tests.bench.e2e_scenarios import Options
from tests.bench.ingest import Pipeline
from tests.bench.ingest_frames import SYMBOL, simulated
from tests.bench.live import Stack
from tests.bench.report import Figure
from tests.support.service import Book, BookReader
from tests.support.waiting import wait_until

FRAMES = 20_000
LEVELS = (60, 1_000)
RATIO_TARGET = 0.8
SETTLE_SECONDS = 60.0
"""How long the served book may take to equal the truth: before the burst (in step) and after it (caught up)."""


def burst(options: Options) -> tuple[list[Figure], dict[str, Any]]:
    frames = 2_000 if options.quick else FRAMES
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    for levels in LEVELS:
        end_to_end = _end_to_end(options, levels, frames)
        in_process = _in_process(levels, frames)
        e2e_rate, local_rate = end_to_end["frames_per_s"], in_process["frames_per_s"]
        details[f"{levels} levels"] = {"end_to_end": end_to_end, "in_process": in_process}
        figures += [
            Figure(f"end to end frames/s @{levels} lvls", e2e_rate, "frames/s"),
            Figure(f"in process frames/s @{levels} lvls", local_rate, "frames/s"),
            Figure(f"end to end / in process @{levels} lvls", e2e_rate / local_rate, "ratio", RATIO_TARGET, "higher"),
        ]
    return figures, details


def _snapshot_limit(levels: int) -> int:
    """The smallest Binance snapshot band holding the whole book: the server keeps every level, as in process."""
    return next(band for band in (100, 500, 1_000, 5_000) if band >= levels)


def _end_to_end(options: Options, levels: int, frames: int) -> dict[str, Any]:
    sim_args = ["--levels", str(levels), "--rate", "50"]
    server_args = ["--binance-snapshot-limit", str(_snapshot_limit(levels))]
    with Stack(options.workdir, sim_args, server_args, name=f"server-burst-{levels}") as stack:
        stack.server.wait_serving()
        control = stack.sim.control

        def truth() -> Book:
            return Book.from_truth(control.truth(10)["merged"])

        reader = BookReader(stack.server.target)
        try:
            reader.wait_for(lambda book: book.exchanges() == {"binance", "bitstamp"}, SETTLE_SECONDS,
                            "from both venues")
            # Every level kept, as in process: a book in step on its first, shallower snapshot is deepened first
            # (a server older than deepening has no such gauge: 0).
            wait_until(lambda: stack.server.metrics().value("orderbook_book_deepening", exchange="binance") == 0,
                       SETTLE_SECONDS, "Binance's book deepened")
            control.pause()
            before = truth()
            reader.wait_for(lambda book: book == before, SETTLE_SECONDS, "equal to the paused truth")
            queued_at = control.burst("binance", frames)["queued_at"]
            after = truth()
            reader.wait_for(lambda book: book == after, SETTLE_SECONDS, "equal to the truth after the burst")
            caught_up_at = reader.arrivals[-1]
        finally:
            reader.close()
        received = stack.server.metrics().value("orderbook_frames_received_total")
    seconds = caught_up_at - queued_at
    return {"frames": frames, "seconds": seconds, "frames_per_s": frames / seconds, "server_frames": received}


def _in_process(levels: int, frames: int) -> dict[str, Any]:
    replay = simulated(levels, frames, venues=("binance",), combined=True)
    pipeline = Pipeline(replay, SYMBOL)
    seconds = pipeline.run(replay.frames)
    return {"frames": len(replay.frames), "seconds": seconds, "frames_per_s": len(replay.frames) / seconds,
            "summaries_published": pipeline.served.published_total}
