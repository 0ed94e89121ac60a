"""Reading a recording back: every file of a directory in order, each to its last complete block.

What cannot be read is said in one line each, through ``on_problem``, and skipped: a block whose checksum fails
(the reader looks for the next block's mark and goes on), a file cut short in its last block (kill -9, a full disk:
what was written before it is read), a file that is no recording's (killed before its header was written). A
file of a newer format version raises :class:`NewerVersion`: nothing of it could be trusted.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import zstandard

from orderbook.recording.format import (
    BLOCK_HEADER,
    BLOCK_HEADER_BYTES,
    BLOCK_MAGIC,
    FILE_HEADER_BYTES,
    FILE_SUFFIX,
    MAX_BLOCK_RAW,
    FormatError,
    Kind,
    NewerVersion,
    Record,
    check_file_header,
    decode_records,
)

Problem = Callable[[str], None]


def recording_files(directory: Path) -> list[Path]:
    """The recording's files, oldest first (their names sort by the time each was started). Raises
    :class:`FormatError` when there are none."""
    try:
        files = sorted(path for path in directory.iterdir() if path.name.endswith(FILE_SUFFIX))
    except OSError as error:
        raise FormatError(f"{directory}: {error.strerror or error}") from None
    if not files:
        raise FormatError(f"{directory}: no recording here (no *{FILE_SUFFIX} file)")
    return files


def read_file(path: Path, on_problem: Problem, packed: bool = False) -> Iterator[Record]:
    """The records of one file, to its last complete block (``packed``: see :func:`read_directory`)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        on_problem(f"{path}: cannot be read: {error.strerror or error}")
        return
    try:
        check_file_header(data[:FILE_HEADER_BYTES], str(path))
    except NewerVersion:
        raise
    except FormatError as error:
        on_problem(f"{error}: skipped")
        return
    decompressor = zstandard.ZstdDecompressor()
    at, end = FILE_HEADER_BYTES, len(data)
    while at < end:
        if data[at:at + len(BLOCK_MAGIC)] != BLOCK_MAGIC or at + BLOCK_HEADER_BYTES > end:
            at = _resync(path, data, at, on_problem, "no block starts here")
            continue
        compressed_length, raw_length, _records, crc = BLOCK_HEADER.unpack_from(data, at + len(BLOCK_MAGIC))
        start = at + BLOCK_HEADER_BYTES
        if start + compressed_length > end:
            on_problem(f"{path}: cut short at byte {at} (a block of {compressed_length} bytes, {end - start} "
                       "written): read up to there")
            return
        compressed = data[start:start + compressed_length]
        if raw_length > MAX_BLOCK_RAW or zlib.crc32(compressed) != crc:
            at = _resync(path, data, at, on_problem, "a block whose checksum fails")
            continue
        try:
            raw = decompressor.decompress(compressed, max_output_size=raw_length)
            records = list(decode_records(raw, packed))
        except (zstandard.ZstdError, FormatError) as error:
            at = _resync(path, data, at, on_problem, f"a block that cannot be unpacked ({error})")
            continue
        yield from records
        at = start + compressed_length


def _resync(path: Path, data: bytes, at: int, on_problem: Problem, what: str) -> int:
    """Where the next block's mark is after ``at`` (the end if none), having said what was skipped."""
    found = data.find(BLOCK_MAGIC, at + 1)
    following = len(data) if found < 0 else found
    on_problem(f"{path}: corrupt at byte {at} ({what}): {following - at} bytes skipped")
    return following


def read_directory(directory: Path, on_problem: Problem, packed: bool = False) -> Iterator[Record]:
    """Every record of the recording in ``directory``, in the order written. The connections a file repeats at its
    head (:attr:`Kind.OPENED` of those still open when it was started) are given once. ``packed``: the frames a
    connection read in one batch come as the one :attr:`Kind.FRAMES` record they were written in
    (:func:`~orderbook.recording.format.unpack_frames`), for a replay that keeps the batches."""
    opened: set[int] = set()
    for path in recording_files(directory):
        for record in read_file(path, on_problem, packed):
            if record.kind is Kind.OPENED:
                if record.connection in opened:
                    continue
                opened.add(record.connection)
            yield record
