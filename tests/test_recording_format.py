"""The recording's format and writer, in process: what is written reads back, a file cut anywhere reads back to
its last whole block, a corrupt block is skipped with one line, a newer version is refused, files rotate within
their bounds, and a writer that falls behind drops and counts rather than waits."""

from __future__ import annotations

import random
import time
from pathlib import Path
from time import time_ns

import pytest

from orderbook.recording.format import FILE_SUFFIX, VERSION, FormatError, Kind, NewerVersion, Record
from orderbook.recording.reader import read_directory, read_file, recording_files
from orderbook.recording.tap import RecordingStream
from orderbook.recording.writer import Recorder, check_directory

START = {"symbols": ["ETHBTC"]}


def _recorder(directory: Path, **options: int | float) -> Recorder:
    settings: dict[str, int | float] = {"file_bytes": 1 << 20, "max_bytes": 1 << 30} | options
    return Recorder(directory, start_meta=START, **settings)  # type: ignore[arg-type]


def _frames(recorder: Recorder, count: int, start: int = 0) -> None:
    for index in range(start, start + count):
        recorder.record(Kind.FRAME, 1_700_000_000_000_000_000 + index, 1,
                        None, f'{{"e":"depthUpdate","u":{index},"b":[["0.05","{index}"]]}}'.encode())


def _read(directory: Path) -> tuple[list[Record], list[str]]:
    problems: list[str] = []
    return list(read_directory(directory, problems.append)), problems


def test_what_is_recorded_reads_back_in_order_with_each_kind_of_record(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path)
    recorder.start()
    connection = recorder.new_connection()
    recorder.record(Kind.OPENED, 1, connection, {"venue": "binance", "url": "ws://x/stream"})
    _frames(recorder, 100)
    recorder.record(Kind.FRAME, 2, connection, None, "text frame ü")
    recorder.record(Kind.HTTP, 3, 0, {"venue": "binance", "url": "http://x/depth", "status": 200, "sent_ns": 2},
                    b'{"lastUpdateId": 1}')
    recorder.record(Kind.CLOSED, 4, connection, {"reason": "silence", "detail": "nothing for 10 s"})
    recorder.stop()
    records, problems = _read(tmp_path)
    assert problems == []
    assert [record.kind for record in records] == [Kind.START, Kind.OPENED, *[Kind.FRAME] * 101, Kind.HTTP,
                                                   Kind.CLOSED]
    assert records[0].meta == START
    assert records[2].body == b'{"e":"depthUpdate","u":0,"b":[["0.05","0"]]}'
    assert records[102].body == "text frame ü".encode()
    assert records[103].meta["status"] == 200 and records[103].body == b'{"lastUpdateId": 1}'
    assert recorder.stats.records == 104 and recorder.stats.dropped_queue_full == 0


def test_a_file_cut_anywhere_reads_back_to_its_last_whole_block_with_one_line(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path / "whole", flush_interval=0.01)
    check_directory(tmp_path / "whole")
    recorder.start()
    for block in range(5):
        _frames(recorder, 20, block * 20)
        time.sleep(0.2)  # each its own block
    recorder.stop()
    [path] = recording_files(tmp_path / "whole")
    data = path.read_bytes()
    whole = list(read_file(path, pytest.fail))
    assert len(whole) == 101
    cut_dir = tmp_path / "cut"
    cut_dir.mkdir()
    cut = cut_dir / path.name
    for length in range(len(data) - 1, 8, -max(1, len(data) // 97)):
        cut.write_bytes(data[:length])
        problems: list[str] = []
        records = list(read_file(cut, problems.append))
        assert records == whole[:len(records)]
        assert len(records) >= 1 + 20 * ((len(records) - 1) // 20)  # whole blocks only
        assert len(problems) <= 1
        if problems:
            assert "cut short" in problems[0] or "corrupt" in problems[0]


def test_a_corrupt_block_is_skipped_with_one_line_and_the_rest_is_read(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path, flush_interval=0.01)
    recorder.start()
    for block in range(3):
        _frames(recorder, 10, block * 10)
        time.sleep(0.2)
    recorder.stop()
    [path] = recording_files(tmp_path)
    data = bytearray(path.read_bytes())
    blocks = [index for index in range(len(data)) if data[index:index + 4] == b"OBRB"]
    assert len(blocks) == 4  # the head and three of frames
    data[blocks[2] + 30] ^= 0xFF  # inside the second block of frames
    path.write_bytes(bytes(data))
    records, problems = _read(tmp_path)
    assert [int(record.body.split(b'"u":')[1].split(b",")[0]) for record in records[1:]] == [
        *range(10), *range(20, 30)]
    assert len(problems) == 1 and "corrupt at byte" in problems[0] and "checksum" in problems[0]


def test_a_newer_format_version_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / f"{1:020d}{FILE_SUFFIX}").write_bytes(b"OBREC\x00" + (VERSION + 1).to_bytes(2, "little"))
    with pytest.raises(NewerVersion, match=f"version {VERSION + 1} is newer than this reader's"):
        _read(tmp_path)
    (tmp_path / f"{1:020d}{FILE_SUFFIX}").write_bytes(b"hello")
    assert _read(tmp_path) == ([], [f"{tmp_path}/{1:020d}{FILE_SUFFIX}: not a recording (no OBREC header): skipped"])


def test_no_recording_in_a_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no recording here"):
        _read(tmp_path)
    with pytest.raises(FormatError, match="No such file"):
        _read(tmp_path / "nowhere")


def test_files_rotate_at_their_size_and_the_oldest_go_first_within_the_total(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path, file_bytes=20_000, max_bytes=100_000, block_bytes=4_000)
    recorder.start()
    connection = recorder.new_connection()
    recorder.record(Kind.OPENED, 1, connection, {"venue": "bitstamp", "url": "ws://y"})
    noise = random.Random(1)
    for index in range(3000):  # bodies that do not compress away
        recorder.record(Kind.FRAME, 10 + index, connection, None, noise.randbytes(100))
    recorder.stop()
    files = recording_files(tmp_path)
    sizes = [path.stat().st_size for path in files]
    assert recorder.stats.files_deleted > 0 and sum(sizes) <= 100_000
    assert all(size < 20_000 + 8_000 for size in sizes)
    records, problems = _read(tmp_path)
    assert problems == []
    assert records[0].kind is Kind.START and records[1].kind is Kind.OPENED  # every file stands on its own
    frames = [record.time_ns for record in records if record.kind is Kind.FRAME]
    assert frames == list(range(frames[0], 3010)) and frames[0] > 10  # the newest kept, in order, none missing


def test_a_writer_too_far_behind_drops_and_counts_without_waiting(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path, queue_bytes=10_000)  # not started: nothing is taken from the queue
    began = time.perf_counter()
    _frames(recorder, 1000)
    assert time.perf_counter() - began < 0.5
    assert 0 < recorder.stats.dropped_queue_full < 1000
    recorder.start()
    recorder.stop()
    records, _ = _read(tmp_path)
    assert len(records) - 1 == 1000 - recorder.stats.dropped_queue_full


def test_a_directory_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="cannot record there"):
        check_directory(blocker / "sub")


class _Socket:
    """A venue connection's frames, as the transport hands them over: ``recv`` the next one; ``recv_waiting`` the
    next one or None (the batch is over)."""

    def __init__(self, *frames: bytes) -> None:
        self.frames = list(frames)
        self.send = self.ping = self.waiting = self.close = lambda *args: None

    def recv(self) -> bytes:
        return self.frames.pop(0)

    def recv_waiting(self) -> bytes | None:
        return self.frames.pop(0) if self.frames else None


def test_the_frames_two_connections_hold_are_recorded_in_the_order_they_came(tmp_path: Path) -> None:
    """A connection's frames are held until its next batch or the next record: a batch one venue applied without
    publishing is held while the other venue's batch is applied after it and published; it is recorded first."""
    recorder = _recorder(tmp_path)
    recorder.start()
    binance = RecordingStream(_Socket(b"a1", b"a2", b"a3"), recorder, 1)  # type: ignore[arg-type]
    bitstamp = RecordingStream(_Socket(b"b1", b"b2", b"b3"), recorder, 2)  # type: ignore[arg-type]
    assert bitstamp.recv() == b"b1" and bitstamp.recv_waiting() == b"b2"  # Bitstamp's batch, no summary: held
    assert binance.recv() == b"a1"  # Binance's batch, applied and published after it
    recorder.record(Kind.SUMMARY, time_ns(), 0, {"symbol": "ETHBTC"}, b"after b1, b2, a1")
    assert binance.recv() == b"a2"  # Binance's next batch, its first frame: held
    assert bitstamp.recv() == b"b3"  # Bitstamp's next batch
    bitstamp.close()  # its end is recorded after what both hold: Binance's, received first, goes first
    recorder.stop()
    records, _ = _read(tmp_path)
    assert [record.body or record.kind for record in records[1:]] == [
        b"b1", b"b2", b"a1", b"after b1, b2, a1", b"a2", b"b3", Kind.CLOSED]
