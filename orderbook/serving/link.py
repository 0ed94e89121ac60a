"""The link between the book process and a serving process: one socketpair, a message type each way.

Book -> serving process: binary frames, a 13-byte header (kind, payload length, the book's publish time as a
``time.perf_counter()`` value, CLOCK_MONOTONIC in every process on Linux) and the payload: a symbol's full
summary (the symbol, one byte of length then ASCII, and the serialized ``Summary``), a symbol's venues (a
serialized ``orderbook.SymbolState``), the health state, or a quote's update (its key, two bytes of length then the
key, and the serialized ``QuoteUpdate``: :mod:`orderbook.serving.quotes`). Serving process -> book: one JSON
object a line: ``{"ready": port}`` or ``{"error": text}`` once at start, then ``{"stats": {...}}``
(:class:`~orderbook.serving.stats.ServingStats`) every second, and ``{"quote": key in hex, "open": true}`` when a
quote's first stream opens there (``false`` when its last ends).
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any, BinaryIO

from orderbook.symbol_state import SymbolState

SUMMARY = 1
SERVING = 2
STATE = 3
QUOTE = 4

HEADER = struct.Struct("<BId")
MAX_PAYLOAD = 1 << 20
"""A summary is a few hundred bytes; anything near this is a bug, and the serving process exits on it."""


class LinkError(Exception):
    """The other end sent something this end cannot read."""


def frame(kind: int, payload: bytes, published_at: float = 0.0) -> bytes:
    return HEADER.pack(kind, len(payload), published_at) + payload


def summary_frame(symbol: str, summary: bytes, published_at: float) -> bytes:
    name = symbol.encode("ascii")
    if len(name) > 255:
        raise ValueError(f"a symbol of {len(name)} characters does not fit a frame")
    return frame(SUMMARY, bytes((len(name),)) + name + summary, published_at)


def split_summary(payload: bytes) -> tuple[str, bytes]:
    """A SUMMARY frame's ``(symbol, summary)``."""
    end = 1 + payload[0] if payload else 1
    if len(payload) < end:
        raise LinkError("a summary frame cut short in its symbol")
    try:
        return payload[1:end].decode("ascii"), payload[end:]
    except UnicodeDecodeError:
        raise LinkError(f"a summary frame's symbol is not ASCII: {payload[1:end]!r}") from None


def quote_frame(key: bytes, update: bytes) -> bytes:
    return frame(QUOTE, len(key).to_bytes(2, "little") + key + update)


def split_quote(payload: bytes) -> tuple[bytes, bytes]:
    """A QUOTE frame's ``(key, update)``."""
    end = 2 + int.from_bytes(payload[:2], "little")
    if len(payload) < end:
        raise LinkError("a quote frame cut short in its key")
    return payload[2:end], payload[end:]


def quote_message(key: bytes, open_: bool) -> dict[str, Any]:
    """A serving process's ask for a quote's updates (``open_``), or its end."""
    return {"quote": key.hex(), "open": open_}


def state_frame(state: SymbolState) -> bytes:
    return frame(STATE, state.to_message().SerializeToString())


def read_state(payload: bytes) -> SymbolState:
    """A STATE frame's state."""
    try:
        return SymbolState.from_bytes(payload)
    except ValueError as error:
        raise LinkError(str(error)) from None


def serving_frame(serving: bool) -> bytes:
    return frame(SERVING, b"\x01" if serving else b"\x00")


def read_frame(reader: BinaryIO) -> tuple[int, bytes, float] | None:
    """The next ``(kind, payload, published_at)``, or None at a clean end of stream."""
    header = reader.read(HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        raise LinkError("link closed in the middle of a frame header")
    kind, length, published_at = HEADER.unpack(header)
    if kind not in (SUMMARY, SERVING, STATE, QUOTE) or length > MAX_PAYLOAD:
        raise LinkError(f"bad frame: kind {kind}, {length} bytes")
    payload = reader.read(length)
    if len(payload) < length:
        raise LinkError("link closed in the middle of a frame")
    return kind, payload, published_at


def send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")


def read_message(reader: BinaryIO) -> dict[str, Any] | None:
    """The next JSON message, or None at the end of stream. Raises :class:`LinkError` on a malformed line."""
    line = reader.readline(MAX_PAYLOAD)
    if not line:
        return None
    try:
        message = json.loads(line)
    except ValueError as error:
        raise LinkError(f"not JSON: {line[:80]!r}") from error
    if not isinstance(message, dict):
        raise LinkError(f"not an object: {line[:80]!r}")
    return message
