"""The merged top as a serialized ``orderbook.Summary``.

Each published summary is encoded once and the same bytes go to every stream (the gRPC handler passes them
through untouched), so the per-client cost is only the send. Floats appear here and nowhere upstream.

The encoding is written by hand from the proto's field numbers: a summary is three fields and a level three
more, and building 20 protobuf message objects per summary cost more than the rest of the publish path. Levels
mostly survive from one summary to the next, so each level's bytes are cached. The tests check that protobuf
decodes every encoding to exactly the message protobuf itself would build.

The same field layout lets a summary be cut to fewer levels a side as bytes (:class:`SummaryFields`): that is how
the streams of a shallower depth get theirs, in the book process and in the serving processes alike.
"""

from __future__ import annotations

import math
import struct

from orderbook.merge import Level, MergedTop
from orderbook.prices import to_float

# The proto has no "absent" double: a summary with an empty side carries NaN as its spread (clients see null
# in the JSON client output). This is the documented meaning of NaN on the wire.
NO_SPREAD = math.nan

# Wire tags, (field number << 3) | wire type; 1 = 64-bit, 2 = length-delimited.
_SUMMARY_SPREAD = b"\x09"  # Summary.spread = 1, double
_SUMMARY_BIDS = b"\x12"  # Summary.bids = 2, repeated Level
_SUMMARY_ASKS = b"\x1a"  # Summary.asks = 3, repeated Level
_BIDS_TAG, _ASKS_TAG = _SUMMARY_BIDS[0], _SUMMARY_ASKS[0]
_LEVEL_EXCHANGE = b"\x0a"  # Level.exchange = 1, string
_LEVEL_PRICE = b"\x11"  # Level.price = 2, double
_LEVEL_AMOUNT = b"\x19"  # Level.amount = 3, double

_double = struct.Struct("<d").pack
_CACHE_LIMIT = 1 << 11  # a few summaries' worth of levels: see orderbook.merge
_level_cache: dict[tuple[bytes, Level], bytes] = {}


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, level: Level) -> bytes:
    """One ``Level`` as a length-delimited field of the summary (proto3 leaves zero values out)."""
    name = level.exchange.encode()
    body = b"".join(
        (
            _LEVEL_EXCHANGE + _varint(len(name)) + name if name else b"",
            _LEVEL_PRICE + _double(to_float(level.price)) if level.price else b"",
            _LEVEL_AMOUNT + _double(to_float(level.amount)) if level.amount else b"",
        )
    )
    return tag + _varint(len(body)) + body


def _cached_field(tag: bytes, level: Level) -> bytes:
    key = (tag, level)
    encoded = _level_cache.get(key)
    if encoded is None:
        encoded = _level_cache[key] = _field(tag, level)
    return encoded


def encode_summary(top: MergedTop) -> bytes:
    """Serialize ``top``; the spread is NaN when either side is empty (``top.spread is None``)."""
    if len(_level_cache) >= max(_CACHE_LIMIT, 4 * (len(top.bids) + len(top.asks))):
        _level_cache.clear()  # between summaries, never in the middle of one
    spread = NO_SPREAD if top.spread is None else to_float(top.spread)
    parts = [_SUMMARY_SPREAD + _double(spread)] if spread != 0.0 else []
    parts += [_cached_field(_SUMMARY_BIDS, level) for level in top.bids]
    parts += [_cached_field(_SUMMARY_ASKS, level) for level in top.asks]
    return b"".join(parts)


def _field_end(payload: bytes, start: int) -> int:
    """Where the length-delimited field whose tag is at ``start`` ends."""
    position, length, shift = start + 1, 0, 0
    while True:
        if position >= len(payload) or shift > 28:
            raise ValueError(f"summary cut short or malformed at byte {start}")
        byte = payload[position]
        position += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    if position + length > len(payload):
        raise ValueError(f"summary cut short at byte {start}")
    return position + length


class SummaryFields:
    """A serialized summary split at its fields, so that its top ``depth`` levels a side are cut out as bytes.

    A summary written by :func:`encode_summary` is the spread, then every bid, then every ask, each level a field
    of its own, so the top ``depth`` levels are a prefix of each side: the cut is byte-for-byte what
    :func:`encode_summary` makes of the truncated top (same spread), without decoding a level or a float. A
    serving process gets only the full summary from the book process, and cuts the shallower ones it serves
    from it this way.
    """

    __slots__ = ("_payload", "_spread_end", "_bid_ends", "_ask_ends")

    def __init__(self, payload: bytes) -> None:
        """Raises ``ValueError`` for bytes that are not a summary in :func:`encode_summary`'s field order."""
        self._payload = payload
        position = 9 if payload[:1] == _SUMMARY_SPREAD else 0
        if position > len(payload):
            raise ValueError("summary cut short in its spread")
        self._spread_end = position
        size = len(payload)
        self._bid_ends: list[int] = []
        self._ask_ends: list[int] = []
        for tag, ends in ((_BIDS_TAG, self._bid_ends), (_ASKS_TAG, self._ask_ends)):
            while position < size and payload[position] == tag:
                length = payload[position + 1] if position + 1 < size else 0x80
                if length < 0x80:  # a length of one byte: every level encode_summary writes (about 30 bytes)
                    end = position + 2 + length
                    if end > size:
                        raise ValueError(f"summary cut short at byte {position}")
                    position = end
                else:
                    position = _field_end(payload, position)
                ends.append(position)
        if position != size:
            raise ValueError(f"unexpected field at byte {position} of a summary")

    def top(self, depth: int) -> bytes:
        """The summary of the best ``depth`` (at least 1) levels a side."""
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        bids, asks, payload = self._bid_ends, self._ask_ends, self._payload
        if depth >= len(bids) and depth >= len(asks):
            return payload
        asks_start = bids[-1] if bids else self._spread_end
        bids_end = bids[depth - 1] if depth < len(bids) else asks_start
        asks_end = asks[depth - 1] if depth < len(asks) else len(payload)
        return payload[:bids_end] + payload[asks_start:asks_end]
