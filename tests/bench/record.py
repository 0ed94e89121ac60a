"""Scenario ``record``: what ``--record`` costs ingest. The in-process ingest pipeline (:mod:`tests.bench.ingest`),
the same simulated frames with and without the recording (and with ``--record-summaries``), the writer thread
running beside it as in the server: frames a second each way and their ratio (the target: at least 0.9, recording
costs at most a tenth); the process's CPU time per frame each way, the writer thread's included until its last
block is written, and their ratio (a shared machine's load moves the first ratio, much less this one); and the
bytes written to disk per frame."""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import Any

from tests.bench.ingest import Pipeline
from tests.bench.ingest_frames import SYMBOL, Replay, simulated
from tests.bench.report import Figure

DEPTH = 1_000
MIN_RATIO = 0.9
ROUNDS = 5
"""Each way is run this many times, alternately (a shared machine's load falls on both alike); medians kept."""


def _run(replay: Replay, record: tuple[str, ...]) -> tuple[float, float, int]:
    """Seconds to ingest ``replay``, the process's CPU seconds for it (the recording's last block written), and
    the bytes the recording wrote (0 without one)."""
    with tempfile.TemporaryDirectory(prefix="bench-record-") as directory:
        pipeline = Pipeline(replay, SYMBOL, record=(*record, directory) if record else ())
        recorder = pipeline.app.recorder
        if recorder is not None:
            recorder.start()
        cpu = time.process_time()
        seconds = pipeline.run(replay.frames)
        if recorder is None:
            return seconds, time.process_time() - cpu, 0
        recorder.stop()
        cpu = time.process_time() - cpu
        if recorder.stats.dropped_queue_full or recorder.stats.dropped_write_failed:
            raise AssertionError(f"the recording dropped records: {recorder.stats}")
        return seconds, cpu, recorder.stats.written_bytes


def record(quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    replay = simulated(DEPTH, 2_000 if quick else 15_000)
    frames = len(replay.frames)
    ways = {"plain": (), "record": ("--record",), "record+summaries": ("--record-summaries", "--record")}
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    cpu: dict[str, list[float]] = {way: [] for way in ways}
    written: dict[str, int] = {}
    for _ in range(1 if quick else ROUNDS):
        for way, flags in ways.items():
            took, used, written[way] = _run(replay, flags)
            seconds[way].append(took)
            cpu[way].append(used)
    rate = {way: frames / statistics.median(runs) for way, runs in seconds.items()}
    cpu_per_frame = {way: statistics.median(runs) / frames for way, runs in cpu.items()}
    figures = [Figure(f"ingest frames/s {way}", rate[way], "frames/s") for way in ways]
    for way in ("record", "record+summaries"):
        figures.append(Figure(f"ingest {way}/plain", rate[way] / rate["plain"], "ratio", MIN_RATIO, "higher"))
        figures.append(Figure(f"CPU/frame {way}/plain", cpu_per_frame[way] / cpu_per_frame["plain"], "ratio"))
        figures.append(Figure(f"bytes on disk/frame {way}", written[way] / frames, "B"))
    return figures, {"frames": frames, "seconds": seconds, "cpu_seconds": cpu, "written_bytes": written}
