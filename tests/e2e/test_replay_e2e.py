"""``bin/replay`` against a real recording: a simulator session of three symbols with faults (Binance gaps, a
stale snapshot, a dropped Bitstamp connection) recorded by ``bin/run-server --record --record-summaries``; replayed
(at max speed, and at the recorded pace sped up) into a fresh ``bin/run-server --record``: its books end as the
recorded server's last summaries (the last both venues served), and it received exactly the recorded diffs of
every venue and symbol, each once, in order. With ``--lockstep`` at max speed, it publishes the recorded summaries,
every one, in order.

Without ``--lockstep`` its sequence of summaries is not compared: a summary is published at the end of each batch a
reader applies, merged with the other venue's book as it is then, and the replayed service makes its own batches and
interleaves the two connections' by its own scheduling (docs/recording.md)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orderbook.recording.format import Kind
from orderbook.recording.reader import read_directory
from orderbook.proto import orderbook_pb2
from orderbook.replay.timeline import Batch, load_timeline
from orderbook.simulator.process import SimulatorProcess
from tests.support.service import REPO_ROOT, Book, BookReader, ServerProcess

REPLAY = REPO_ROOT / "bin" / "replay"
SYMBOLS = "ETHBTC,BTCUSDT,ETHUSDT"


def _last_books(directory: Path) -> dict[str, bytes]:
    """Each symbol's last summary served by both venues: its book before the server stopped (a stopping server
    publishes a venue leaving, then an empty book)."""
    last: dict[str, bytes] = {}
    for record in read_directory(directory, lambda line: None):
        summary = orderbook_pb2.Summary.FromString(record.body) if record.kind is Kind.SUMMARY else None
        if summary is not None and Book.from_summary(summary).exchanges() == {"binance", "bitstamp"}:
            last[str(record.meta["symbol"])] = record.body
    return last


def _diffs(directory: Path) -> dict[tuple[str, str], list[bytes]]:
    """Each venue's diff frames of each symbol, as bin/replay serves them (each once)."""
    diffs: dict[tuple[str, str], list[bytes]] = {}
    for event in load_timeline(directory, None, None, None, lambda line: None).events:
        if isinstance(event, Batch):
            for symbol, payload in event.frames:
                diffs.setdefault((event.venue, symbol), []).append(payload)
    return diffs


def _published(directory: Path) -> list[tuple[str, bytes]]:
    """Every summary the server published, of which symbol, in order, until it began to stop (what it publishes
    then is its stop's: its venues leaving, in an order of its own)."""
    published: list[tuple[str, bytes]] = []
    for record in read_directory(directory, lambda line: None):
        if record.kind is Kind.STOPPING:
            break
        if record.kind is Kind.SUMMARY:
            published.append((str(record.meta["symbol"]), record.body))
    return published


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("replay") / "recording"
    simulator = SimulatorProcess("--rate", "40", "--symbol", SYMBOLS).start()
    server = ServerProcess(simulator.urls, directory.parent / "recorded-server.log", "--symbol", SYMBOLS,
                           "--record", str(directory), "--record-summaries")
    try:
        server.wait_serving()
        time.sleep(1.5)
        simulator.control.gap()
        time.sleep(1.5)
        simulator.control.stale_snapshot()  # the rebuild after the next gap is answered a snapshot too old first
        simulator.control.gap()
        time.sleep(1.5)
        simulator.control.drop("bitstamp")
        time.sleep(2.0)
        assert server.terminate() == 0
        log = server.log()
        assert "rebuilding the book: gap" in log and "is older than the stream" in log
    finally:
        server.terminate()
        simulator.stop()
    return directory


@contextmanager
def _replaying(recording: Path, *flags: str) -> Iterator[tuple[dict[str, str], Callable[[], list[str]]]]:
    """``bin/replay`` of ``recording``: its venues' URLs, and what it says on stderr until it has played out (or
    failed); stopped at the end (SIGTERM), with exit code 0."""
    replay = subprocess.Popen([str(REPLAY), str(recording), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "ORDERBOOK_REPLAY_LINGER": "60"})
    try:
        assert replay.stdout is not None and replay.stderr is not None
        stderr = replay.stderr

        def said() -> list[str]:
            lines: list[str] = []
            for line in stderr:
                lines.append(line)
                if "played out" in line or "error" in line:
                    break
            return lines

        yield json.loads(replay.stdout.readline()), said
        replay.terminate()
        _, rest = replay.communicate(timeout=10)
        assert replay.returncode == 0, rest
    finally:
        if replay.poll() is None:
            replay.kill()
            replay.wait()


@pytest.mark.parametrize("pace", [["--max-speed"], ["--speed", "3"]], ids=["max-speed", "speed-3"])
def test_a_replayed_recording_rebuilds_the_recorded_servers_books(
        starts_processes: None, recording: Path, server_factory: Callable[..., ServerProcess], tmp_path: Path,
        reader_factory: Callable[..., BookReader], pace: list[str]) -> None:
    expected = _last_books(recording)
    assert set(expected) == set(SYMBOLS.split(","))
    replayed = tmp_path / "replayed"
    with _replaying(recording, *pace) as (urls, said):
        server = server_factory(urls, "--symbol", SYMBOLS, "--audit-interval", "0", "--record", str(replayed),
                                "--record-summaries")
        assert said()[-1].startswith("replay: played out:")
        server.wait_serving()
        for symbol, summary in expected.items():
            book = Book.from_summary(orderbook_pb2.Summary.FromString(summary))
            reader_factory(server.target, symbol, 10).wait_for(book.__eq__, timeout=20,
                                                               what=f"of {symbol} equal to the recorded server's last")
        assert server.terminate() == 0
    assert _last_books(replayed) == expected
    assert _diffs(replayed) == _diffs(recording)


def test_a_lockstep_replay_publishes_the_recorded_summaries(
        starts_processes: None, recording: Path, server_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    """``--lockstep``: the replayed server applies the two venues' batches in the recorded order, and its books come
    in step where they did live, so it publishes the recorded summaries, every one, in the recorded order."""
    metrics = f"127.0.0.1:{_free_port()}"
    replayed = tmp_path / "replayed"
    with _replaying(recording, "--max-speed", "--lockstep", f"http://{metrics}/metrics") as (urls, said):
        # Its pace is the service's, not the recorded one: the lag bound would take the books out (docs/recording.md).
        server = server_factory(urls, "--symbol", SYMBOLS, "--audit-interval", "0", "--metrics-addr", metrics,
                                "--max-lag", "3600", "--record", str(replayed), "--record-summaries")
        lines = said()
        assert lines[-1].startswith("replay: played out:") and "in lockstep" in lines[-1], "".join(lines)
        assert server.terminate() == 0
    recorded = _published(recording)
    assert len(recorded) > 100
    published = _published(replayed)
    first_difference = next((index for index, (a, b) in enumerate(zip(published, recorded)) if a != b), None)
    assert (first_difference, len(published)) == (None, len(recorded))
