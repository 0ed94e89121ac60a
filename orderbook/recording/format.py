"""The recording format (docs/recording.md): files of independently compressed, checksummed blocks of
length-prefixed records, so that a file cut anywhere (kill -9, a full disk) reads back to its last complete block.

A file: :data:`FILE_MAGIC` and the format version (``<H``). Then blocks, each :data:`BLOCK_MAGIC`, a header
``<IIII>`` (compressed length, raw length, records, CRC-32 of the compressed bytes) and one zstd frame holding the
records. A record: ``<I`` its length, then ``<BQIH`` (kind, time in ns since the epoch, connection, metadata
length), the metadata (UTF-8 JSON, possibly empty) and the body (raw bytes). Frames are packed many to a record
(:func:`encode_frames`).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import zstandard

VERSION = 3
"""2 added :attr:`Kind.STOPPING`, 3 :attr:`Kind.TAKEN`; a file of an earlier version reads as it is (it has
none)."""
FILE_MAGIC = b"OBREC\x00"
FILE_HEADER = struct.Struct("<H")
FILE_HEADER_BYTES = len(FILE_MAGIC) + FILE_HEADER.size
BLOCK_MAGIC = b"OBRB"
BLOCK_HEADER = struct.Struct("<IIII")
BLOCK_HEADER_BYTES = len(BLOCK_MAGIC) + BLOCK_HEADER.size
RECORD_LENGTH = struct.Struct("<I")
RECORD_HEADER = struct.Struct("<BQIH")
_LENGTH_AND_HEADER = struct.Struct("<IBQIH")
MAX_BLOCK_RAW = 64 << 20
"""A block header claiming more than this is corrupt (the writer closes blocks at a few MiB)."""
FILE_SUFFIX = ".obrec"
COMPRESSION_LEVEL = 1
"""zstd level 1: on the venues' frames, the ratio of gzip -6 (6.8 to 1) for a ninth of its CPU (docs/recording.md)."""


class Kind(IntEnum):
    START = 1
    """Once at the head of every file: what the service followed (``meta``: symbols, depth, venues)."""
    FRAME = 2
    """A data frame a venue connection received (``connection``; ``body``: the payload as received)."""
    OPENED = 3
    """A venue connection opened (``meta``: venue, url); repeated at the head of each file while it is open."""
    CLOSED = 4
    """A venue connection ended (``meta``: reason, detail)."""
    CONNECT_FAILED = 5
    """A connection attempt that failed (``meta``: venue, url, detail)."""
    HTTP = 6
    """A REST answer (``meta``: venue, url, status, sent_ns, error; ``body``: the answer's body); ``time``: when it
    was received."""
    SUMMARY = 7
    """A summary published (``meta``: symbol; ``body``: the serialized ``orderbook.Summary``)."""
    FRAMES = 8
    """Frames a venue connection received one after another, packed (:func:`encode_frames`); read back as one
    :attr:`FRAME` record each."""
    STOPPING = 9
    """The service began to stop (version 2): what follows is its stop's (its books leaving, its connections
    closed), not the venues'."""
    TAKEN = 10
    """The service is done with a snapshot answer (version 3; ``meta``: venue, url, as of the answer's
    :attr:`HTTP` record): loaded (or found older than the stream), compared by an audit or a deepening, or refused.
    What was recorded between the two is what the service read while it parsed and used the answer."""


class FormatError(ValueError):
    """A recording that cannot be read (one line: what and where)."""


class NewerVersion(FormatError):
    pass


@dataclass(frozen=True, slots=True)
class Record:
    kind: Kind
    time_ns: int
    connection: int
    meta: dict[str, Any]
    body: bytes

    @property
    def time(self) -> float:
        return self.time_ns / 1e9


def file_header() -> bytes:
    return FILE_MAGIC + FILE_HEADER.pack(VERSION)


def check_file_header(head: bytes, name: str) -> None:
    """Raises :class:`FormatError` for a file that is not a recording, :class:`NewerVersion` for a newer one."""
    if len(head) < FILE_HEADER_BYTES or not head.startswith(FILE_MAGIC):
        raise FormatError(f"{name}: not a recording (no {FILE_MAGIC[:-1].decode()} header)")
    (version,) = FILE_HEADER.unpack_from(head, len(FILE_MAGIC))
    if version > VERSION:
        raise NewerVersion(f"{name}: recording format version {version} is newer than this reader's ({VERSION}): "
                           "read it with a newer checkout")


def encode_record(out: bytearray, kind: int, time_ns: int, connection: int, meta: dict[str, Any] | None,
                  body: bytes | str) -> None:
    """Append one record to ``out``."""
    if isinstance(body, str):
        body = body.encode()
    if not meta:  # most records (frames): the writer thread's time is the GIL's, taken from the book
        out += _LENGTH_AND_HEADER.pack(RECORD_HEADER.size + len(body), kind, time_ns, connection, 0)
        out += body
        return
    meta_bytes = json.dumps(meta, separators=(",", ":")).encode()
    out += _LENGTH_AND_HEADER.pack(RECORD_HEADER.size + len(meta_bytes) + len(body), kind, time_ns, connection,
                                   len(meta_bytes))
    out += meta_bytes
    out += body


FRAMES_COUNT = struct.Struct("<I")


def encode_frames(out: bytearray, connection: int, frames: list[tuple[int, bytes | str]]) -> None:
    """Append one :attr:`Kind.FRAMES` record: the count (``<I``), every receive time (``<Q`` each), every length
    (``<I`` each), then the payloads one after another. Packed in a few calls whatever the number of frames: the
    writer thread's Python time is taken from the book's (the GIL)."""
    count = len(frames)
    times = [time_ns for time_ns, _ in frames]
    payloads = [payload if isinstance(payload, bytes) else payload.encode() for _, payload in frames]
    lengths = struct.pack(f"<{count}I", *map(len, payloads))
    joined = b"".join(payloads)
    body_length = FRAMES_COUNT.size + 8 * count + len(lengths) + len(joined)
    out += _LENGTH_AND_HEADER.pack(RECORD_HEADER.size + body_length, Kind.FRAMES, times[0], connection, 0)
    out += FRAMES_COUNT.pack(count)
    out += struct.pack(f"<{count}Q", *times)
    out += lengths
    out += joined


def _unpack_frames(body: bytes, connection: int) -> Iterator[Record]:
    if len(body) < FRAMES_COUNT.size:
        raise FormatError("a frames record cut short")
    (count,) = FRAMES_COUNT.unpack_from(body)
    head = FRAMES_COUNT.size + 12 * count
    if len(body) < head:
        raise FormatError("a frames record cut short")
    times = struct.unpack_from(f"<{count}Q", body, FRAMES_COUNT.size)
    lengths = struct.unpack_from(f"<{count}I", body, FRAMES_COUNT.size + 8 * count)
    if head + sum(lengths) != len(body):
        raise FormatError("a frames record whose lengths do not add up")
    at = head
    for time_ns, length in zip(times, lengths, strict=True):
        yield Record(Kind.FRAME, time_ns, connection, {}, body[at:at + length])
        at += length


def encode_block(compressor: zstandard.ZstdCompressor, raw: bytes | bytearray, records: int) -> bytes:
    compressed = compressor.compress(bytes(raw))
    return BLOCK_MAGIC + BLOCK_HEADER.pack(len(compressed), len(raw), records, zlib.crc32(compressed)) + compressed


def unpack_frames(record: Record) -> list[Record]:
    """A :attr:`Kind.FRAMES` record's frames, one :attr:`Kind.FRAME` record each. Raises :class:`FormatError`."""
    return list(_unpack_frames(record.body, record.connection))


def decode_records(raw: bytes, packed: bool = False) -> Iterator[Record]:
    """The records of a block's raw bytes. Raises :class:`FormatError` if they do not add up (a block that passed its
    checksum was written so: a bug, or a writer of another format). ``packed``: a :attr:`Kind.FRAMES` record (the
    frames a connection read in one batch) is given as it is, its frames checked (:func:`unpack_frames`)."""
    at, end = 0, len(raw)
    while at < end:
        if at + RECORD_LENGTH.size + RECORD_HEADER.size > end:
            raise FormatError("a record cut short inside its block")
        (length,) = RECORD_LENGTH.unpack_from(raw, at)
        at += RECORD_LENGTH.size
        if length < RECORD_HEADER.size or at + length > end:
            raise FormatError("a record longer than its block")
        kind, time_ns, connection, meta_length = RECORD_HEADER.unpack_from(raw, at)
        meta_at = at + RECORD_HEADER.size
        body_at = meta_at + meta_length
        if body_at > at + length:
            raise FormatError("a record's metadata longer than the record")
        try:
            meta = json.loads(raw[meta_at:body_at]) if meta_length else {}
            record_kind = Kind(kind)
        except ValueError as error:
            raise FormatError(f"an unreadable record ({error})") from None
        if not isinstance(meta, dict):
            raise FormatError("a record's metadata is not an object")
        if record_kind is Kind.FRAMES:
            frames = list(_unpack_frames(raw[body_at:at + length], connection))
            if packed:
                yield Record(record_kind, time_ns, connection, meta, raw[body_at:at + length])
            else:
                yield from frames
        else:
            yield Record(record_kind, time_ns, connection, meta, raw[body_at:at + length])
        at += length
