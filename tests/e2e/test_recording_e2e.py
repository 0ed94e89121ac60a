"""``bin/run-server --record``, for real: what a server killed with -9 leaves reads back to its last block (at
most about a second lost), a disk that fills up is counted and logged, never fatal, the book served throughout,
and the simulator replays a recording."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orderbook.recording.format import Kind
from orderbook.recording.reader import read_directory, recording_files
from orderbook.simulator.process import SimulatorProcess
from orderbook.simulator.replay import load_recorded
from tests.metrics_scrape import scrape
from tests.support.service import Book, BookReader, ServerProcess, wait_until_matches_truth
from tests.support.waiting import wait_until


def _records(directory: Path) -> tuple[Counter[str], list[str]]:
    problems: list[str] = []
    kinds = Counter(record.kind.name for record in read_directory(directory, problems.append))
    return kinds, problems


def test_a_recording_killed_with_9_reads_back_to_its_last_block(
        simulator_factory: Callable[..., SimulatorProcess], server_factory: Callable[..., ServerProcess],
        tmp_path: Path) -> None:
    simulator = simulator_factory("--rate", "50")
    recording = tmp_path / "recording"
    server = server_factory(simulator.urls, "--record", str(recording), "--record-summaries")
    server.wait_serving()
    time.sleep(3)
    served_frames = scrape(server.metrics_port).value("orderbook_frames_received_total", exchange="binance")
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    kinds, problems = _records(recording)
    assert len(problems) <= 1, problems  # at most the last block, cut short
    assert kinds["START"] == 1 and kinds["OPENED"] == 2 and kinds["HTTP"] >= 4
    assert kinds["SUMMARY"] > 0
    # The moment the service was done with a snapshot answer (a lockstep replay's cue) follows the answer; the kill
    # may have come while one was in use
    in_use: list[str] = []
    for record in read_directory(recording, problems.append):
        if record.kind is Kind.HTTP and ("/depth?" in record.meta["url"] or "/order_book/" in record.meta["url"]):
            in_use.append(record.meta["url"])
        elif record.kind is Kind.TAKEN:
            in_use.remove(record.meta["url"])
    assert kinds["TAKEN"] >= 2 and len(in_use) <= 1, in_use
    # At most about a second of frames lost (50 a second a venue): what was counted before the kill is recorded.
    binance = [record for record in read_directory(recording, problems.append)
               if record.kind is Kind.FRAME and record.connection in _connections(recording, "binance")]
    assert len(binance) >= served_frames - 60, (len(binance), served_frames)


def _connections(directory: Path, venue: str) -> set[int]:
    return {record.connection for record in read_directory(directory, lambda _problem: None)
            if record.kind is Kind.OPENED and record.meta["venue"] == venue}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted afterwards; skipped, saying why, where mounting is not possible."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.strip() or result.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_counted_and_logged_not_fatal(
        simulator_factory: Callable[..., SimulatorProcess], server_factory: Callable[..., ServerProcess],
        small_disk: Path) -> None:
    simulator = simulator_factory("--rate", "200", "--symbol", "ETHBTC,BTCUSDT,ETHUSDT")
    server = server_factory(simulator.urls, "--symbol", "ETHBTC,BTCUSDT,ETHUSDT", "--record", str(small_disk),
                            "--record-summaries", "--record-file-bytes", "65536", "--record-max-bytes", "10000000")

    def dropped() -> float:
        return scrape(server.metrics_port).value("orderbook_record_dropped_total", reason="write_failed")

    server.wait_serving()
    wait_until(lambda: dropped() > 0, timeout=60, what="records dropped on the full disk")
    assert server.proc.poll() is None
    wait_until(lambda: "records are dropped and counted" in server.log(), timeout=10, what="the log line")
    assert server.log().count("No space left on device") == 1  # said once, not for every block
    server.wait_serving(timeout=5)
    # Room again: the writer goes on (a new file), and says so.
    for path in recording_files(small_disk)[:-1]:
        path.unlink()
    wait_until(lambda: "recording: writing again" in server.log(), timeout=20, what="writing again")
    assert server.terminate() == 0
    kinds, problems = _records(small_disk)
    assert kinds["FRAME"] > 0 and problems == []  # every file whole: a failed write was cut back
    assert shutil.disk_usage(small_disk).total <= 2 << 20 and os.path.ismount(small_disk)


def test_the_simulator_replays_a_recording_and_a_server_rebuilds_its_book(
        simulator_factory: Callable[..., SimulatorProcess], server_factory: Callable[..., ServerProcess],
        reader_factory: Callable[..., BookReader], tmp_path: Path) -> None:
    """A session recorded with a gap on Binance (a rebuild) is read by the simulator's replay (--replay-binance
    and --replay-bitstamp take the directory), and a fresh server pointed at the replay comes to the book the
    replay ends on, the recording's own last book."""
    live = simulator_factory("--rate", "40")
    recording = tmp_path / "recording"
    server = server_factory(live.urls, "--record", str(recording))
    server.wait_serving()
    time.sleep(1)
    live.control.gap()
    time.sleep(2)
    assert server.terminate() == 0
    binance = load_recorded(recording, "binance")
    ids = [event["u"] for _, event in binance.frames]
    assert len(ids) > 40 and ids == sorted(set(ids))
    assert len(load_recorded(recording, "bitstamp").frames) > 40
    # Paused until the server has subscribed: a replay is served once, and a book is only asked a snapshot for
    # once a diff is buffered.
    replay = simulator_factory("--replay-binance", str(recording), "--replay-bitstamp", str(recording),
                               "--replay-speed", "max", "--paused")
    fresh = server_factory(replay.urls)
    fresh.wait_serving()  # Bitstamp, a quiet pair taken after 5 s
    reader = reader_factory(fresh.target)
    replay.control.resume()
    reader.wait_for(lambda book: book.exchanges() == {"binance", "bitstamp"}, 20, "with both venues")
    wait_until_matches_truth(reader, lambda: Book.from_truth(replay.control.truth(10)["merged"]), 20)
