"""The merged top as a serialized ``orderbook.Summary``.

Each published summary is encoded once and the same bytes go to every stream (the gRPC handler passes them
through untouched), so the per-client cost is only the send. Floats appear here and nowhere upstream.

The encoding is written by hand from the proto's field numbers: a summary is three fields and a level three
more, and building 20 protobuf message objects per summary cost more than the rest of the publish path. Levels
mostly survive from one summary to the next, so each level's bytes are cached. The tests check that protobuf
decodes every encoding to exactly the message protobuf itself would build.
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
