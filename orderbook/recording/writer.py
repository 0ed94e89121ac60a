"""The recording's writer: records go through a bounded queue to a native thread that packs, compresses and writes
them, so that the book never waits for the disk.

With gevent's monkey patching a file write blocks the hub (every greenlet, the venue readers included) for as long
as the disk takes; zstd and the packing of records would take the hub's time too. So the writer is an OS thread
(the original ``_thread``, not gevent's), and the hot path only appends to a deque (atomic under the GIL, no lock).
The queue is bounded in bytes: when the thread falls behind (a slow disk), records are dropped and counted, never
waited for. A write that fails (a full disk) drops its block's records, counted, and is tried again with the next
block: the file is cut back to its last whole block first, so that it stays readable.

Blocks are closed at :data:`BLOCK_BYTES` or :data:`FLUSH_INTERVAL` after their first record, whichever comes first,
and handed to the kernel at once: after kill -9 every file reads back to its last block, losing at most the last
second. (A power cut loses what the kernel had not written out: no fsync is asked for.)
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol

import gevent
import gevent.monkey
import zstandard

from orderbook.recording.format import (
    COMPRESSION_LEVEL,
    FILE_SUFFIX,
    Kind,
    encode_block,
    encode_frames,
    encode_record,
    file_header,
)
from orderbook.recording.stats import RecorderStats

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5
"""Seconds a block stays open at most: what kill -9 can lose, with the thread's tick."""
TICK = 0.05
"""Seconds the writer thread sleeps when the queue is empty."""
BLOCK_BYTES = 1 << 20
"""Raw bytes at which a block is closed: compressed in one go, so its size bounds what one compression holds the
thread; a larger one gains nothing in ratio (docs/recording.md)."""
QUEUE_BYTES = 64 << 20
"""Bytes of records waiting for the writer at most: about a minute of a busy venue feed; beyond it, dropped."""
RECORD_OVERHEAD = 64
"""What a record in the queue costs beside its body, as the bound counts it."""
STOP_WAIT = 5.0
"""Seconds :meth:`Recorder.stop` waits for the thread's last block."""
WATCH_INTERVAL = 1.0
_OPENED, _CLOSED = int(Kind.OPENED), int(Kind.CLOSED)
_FRAMES = 0
"""In the queue only: a batch of frames of one connection."""


class FrameSource(Protocol):
    def held_since(self) -> int | None:
        """The receive time (ns) of the first frame held back; None when none is."""

    def hand_over(self) -> None:
        """Queue the frames held back (:meth:`Recorder.frames`)."""


_start_thread: Callable[..., Any] = gevent.monkey.get_original("_thread", "start_new_thread")
_allocate_lock: Callable[[], Any] = gevent.monkey.get_original("_thread", "allocate_lock")
_thread_sleep: Callable[[float], None] = gevent.monkey.get_original("time", "sleep")


class RecordingUnavailable(OSError):
    """The directory cannot be recorded in (one line: which and why)."""


def check_directory(directory: Path) -> None:
    """Make ``directory`` if need be and check that a file can be made in it; raises :class:`RecordingUnavailable`."""
    probe = directory / f".write-check-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise RecordingUnavailable(f"{directory}: cannot record there: {error.strerror or error}") from None


class Recorder:
    """Takes records on the hot path (:meth:`record`, from the gevent thread only) and writes them in a thread of
    its own into ``directory``: files of at most about ``file_bytes``, the oldest deleted so that they never take
    more than ``max_bytes`` together. ``start_meta``: the :attr:`Kind.START` record at the head of every file."""

    def __init__(self, directory: Path, *, file_bytes: int, max_bytes: int, start_meta: dict[str, Any],
                 queue_bytes: int = QUEUE_BYTES, flush_interval: float = FLUSH_INTERVAL,
                 block_bytes: int = BLOCK_BYTES) -> None:
        self.directory = directory
        self.stats = RecorderStats()
        self._file_bytes = file_bytes
        self._max_bytes = max_bytes
        self._start_meta = start_meta
        self._queue_limit = queue_bytes
        self._flush_interval = flush_interval
        self._block_limit = block_bytes
        self._queue: deque[tuple[int, int, int, dict[str, Any] | None, Any]] = deque()
        """Records ``(kind, time in ns, connection, meta, body)``, and batches of frames (kind ``_FRAMES``, the
        body a list of ``(time in ns, payload)``)."""
        self._append = self._queue.append
        self._queued_bytes = 0
        """Written by the gevent thread only."""
        self._taken_bytes = 0
        """Written by the writer thread only."""
        self._connections = 0
        self._sources: set[FrameSource] = set()
        self._stopping = False
        self._running = _allocate_lock()
        # The writer thread's own state.
        self._compressor = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL)
        self._block = bytearray()
        self._block_records = 0
        self._block_started = 0.0
        self._fd: int | None = None
        self._size = 0
        self._open: dict[int, tuple[int, dict[str, Any] | None]] = {}
        """The connections open, by number: when each opened and its metadata, repeated at the head of each file."""

    # -- the gevent side -----------------------------------------------------------------------------------------

    def record(self, kind: int, time_ns: int, connection: int, meta: dict[str, Any] | None,
               body: bytes | str = b"") -> None:
        """Queue a record; dropped and counted when the writer is too far behind. Never blocks. The frames the
        sources hold are queued first (:meth:`hand_over_held`): they were received before it."""
        self.hand_over_held()
        if self._queued_bytes - self._taken_bytes > self._queue_limit:
            self.stats.dropped_queue_full += 1
            return
        self._queued_bytes += len(body) + RECORD_OVERHEAD
        self._append((kind, time_ns, connection, meta, body))

    def frames(self, connection: int, frames: list[tuple[int, bytes | str]]) -> None:
        """Queue a connection's frames, ``(receive time in ns, payload)`` in order (a batch of them, handed over
        at once: a call per frame cost a tenth of ingest); dropped and counted as :meth:`record`."""
        size = sum(len(payload) for _, payload in frames) + RECORD_OVERHEAD * len(frames)
        if self._queued_bytes - self._taken_bytes > self._queue_limit:
            self.stats.dropped_queue_full += len(frames)
            return
        self._queued_bytes += size
        self._append((_FRAMES, size, connection, None, frames))  # the size where a record's time goes

    def hand_over_held(self) -> None:
        """Queue the frames every source holds back, the source whose first frame came first before the others:
        each source's frames were applied together, one source's batch after another's, in the order they came (a
        venue's batch that changed no summary can be held while the other venue's batch is applied and published
        after it)."""
        holding = [(since, source) for source in self._sources if (since := source.held_since()) is not None]
        for _, source in sorted(holding, key=itemgetter(0)):
            source.hand_over()

    def add_source(self, source: FrameSource) -> None:
        """``source`` holds frames back until it hands them over: it is asked to before any other record."""
        self._sources.add(source)

    def remove_source(self, source: FrameSource) -> None:
        self._sources.discard(source)

    def new_connection(self) -> int:
        """A number for a connection, unique in the recording of this process."""
        self._connections += 1
        return self._connections

    def start(self) -> None:
        self._running.acquire()
        _start_thread(self._run, ())

    def stop(self) -> None:
        """Write what is queued and close the file (waits up to :data:`STOP_WAIT` for the thread)."""
        self._stopping = True
        if self._running.acquire(True, STOP_WAIT):
            self._running.release()

    def watch(self) -> None:
        """Log each new write error once, and the recovery (the writer thread does not log: its lines would cross
        the hub's)."""
        reported: str | None = None
        while True:
            gevent.sleep(WATCH_INTERVAL)
            error = self.stats.last_error
            if error != reported:
                if error is not None:
                    log.error("recording: %s: records are dropped and counted (orderbook_record_dropped_total) "
                              "until it can write again", error)
                else:
                    log.warning("recording: writing again in %s", self.directory)
                reported = error

    # -- the writer thread ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                stopping = self._stopping
                took = self._take()
                if self._block_records and (stopping or time.monotonic() - self._block_started
                                            >= self._flush_interval):
                    self._write_block()
                if stopping:
                    break
                if not took:
                    _thread_sleep(TICK)
        finally:
            self._close()
            self._running.release()

    def _take(self) -> int:
        """Pack every record queued into the open block (written whenever it fills); how many there were."""
        queue, taken, popleft = self._queue, 0, self._queue.popleft
        if queue and not self._block_records:
            self._block_started = time.monotonic()
        block = self._block
        while queue:
            kind, time_ns, connection, meta, body = popleft()
            taken += 1
            if kind == _FRAMES:
                encode_frames(block, connection, body)
                self._taken_bytes += time_ns
                self._block_records += len(body)
            else:
                if kind == _OPENED:
                    self._open[connection] = (time_ns, meta)
                elif kind == _CLOSED:
                    self._open.pop(connection, None)
                encode_record(block, kind, time_ns, connection, meta, body)
                self._taken_bytes += len(body) + RECORD_OVERHEAD
                self._block_records += 1
            if len(block) >= self._block_limit:
                self._write_block()
                block = self._block
                if queue:
                    self._block_started = time.monotonic()
        return taken

    def _write_block(self) -> None:
        records, raw = self._block_records, self._block
        self._block, self._block_records = bytearray(), 0
        if self._fd is None and not self._open_file():
            self.stats.dropped_write_failed += records
            return
        if self._write(encode_block(self._compressor, raw, records)):
            self.stats.records += records
            self.stats.raw_bytes += len(raw)
            self.stats.last_error = None
        else:
            self.stats.dropped_write_failed += records
        if self._size >= self._file_bytes:
            self._close()

    def _write(self, data: bytes) -> bool:
        """Write all of ``data`` to the open file; on failure, cut the file back to where it was and say so."""
        assert self._fd is not None
        view, written = memoryview(data), 0
        try:
            while written < len(data):
                written += os.write(self._fd, view[written:])
        except OSError as error:
            self.stats.last_error = f"{self.directory}: {error.strerror or error}"
            try:
                os.ftruncate(self._fd, self._size)
                os.lseek(self._fd, self._size, os.SEEK_SET)
            except OSError:
                self._close()  # a file that cannot even be cut back is left; the next block starts another
            return False
        self._size += len(data)
        self.stats.written_bytes += len(data)
        return True

    def _open_file(self) -> bool:
        """Start a new file: its header and a block with the start record and the connections open, so that each
        file reads on its own; the oldest files deleted first to stay within ``max_bytes``."""
        self._delete_oldest()
        path = self.directory / f"{time.time_ns():020d}{FILE_SUFFIX}"
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except OSError as error:
            self.stats.last_error = f"{self.directory}: {error.strerror or error}"
            return False
        self._size = 0
        head = bytearray()
        encode_record(head, Kind.START, time.time_ns(), 0, self._start_meta, b"")
        for connection, (opened_ns, meta) in self._open.items():
            encode_record(head, Kind.OPENED, opened_ns, connection, meta, b"")
        if not self._write(file_header() + encode_block(self._compressor, head, 1 + len(self._open))):
            self._close()
            path.unlink(missing_ok=True)  # no header: not a recording's file
            return False
        self.stats.files += 1
        return True

    def _delete_oldest(self) -> None:
        """Delete the oldest recording files until the others and a full new one fit in ``max_bytes``."""
        try:
            files = sorted((path, path.stat().st_size) for path in self.directory.iterdir()
                           if path.name.endswith(FILE_SUFFIX))
        except OSError as error:
            self.stats.last_error = f"{self.directory}: {error.strerror or error}"
            return
        total = sum(size for _, size in files) + self._file_bytes
        for path, size in files:
            if total <= self._max_bytes:
                break
            try:
                path.unlink()
            except OSError as error:
                self.stats.last_error = f"{path}: cannot delete it: {error.strerror or error}"
                return
            total -= size
            self.stats.files_deleted += 1

    def _close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass  # nothing more can be written to it anyway
            self._fd = None
