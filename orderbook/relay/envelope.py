"""The envelope a leader publishes (``proto/orderbook_relay.proto``): made here, and read back with every check an
edge needs before it trusts one."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from orderbook.proto import orderbook_relay_pb2
from orderbook.serving.symbols import SymbolState

MAX_ENVELOPE = 1 << 20
"""A summary is a few KiB at most (--depth 1000 is about 60 KiB); anything near this is not an envelope of ours."""


class BadEnvelope(ValueError):
    """Bytes on the channel or in the hash that are not a well-formed envelope; the message says why."""


@dataclass(frozen=True, slots=True)
class Update:
    """One symbol's latest, as received."""

    epoch: int
    sequence: int
    published_ns: int
    node: str
    symbol: str
    summary: bytes
    """The serialized ``orderbook.Summary``; empty while the symbol has none."""
    state: SymbolState


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The leader is alive; its catalogue."""

    epoch: int
    sequence: int
    published_ns: int
    node: str
    symbols: tuple[str, ...]
    depth: int


def update(epoch: int, sequence: int, node: str, state: SymbolState, summary: bytes | None) -> bytes:
    return orderbook_relay_pb2.Envelope(
        epoch=epoch, sequence=sequence, published_unix_nanos=time.time_ns(), node=node,
        update=orderbook_relay_pb2.SymbolUpdate(symbol=state.symbol, summary=summary or b"",
                                                state=state.to_message()),
    ).SerializeToString()


def heartbeat(epoch: int, sequence: int, node: str, symbols: Sequence[str], depth: int) -> bytes:
    return orderbook_relay_pb2.Envelope(
        epoch=epoch, sequence=sequence, published_unix_nanos=time.time_ns(), node=node,
        heartbeat=orderbook_relay_pb2.Heartbeat(symbols=symbols, depth=depth),
    ).SerializeToString()


def read(data: bytes) -> Update | Heartbeat:
    """The envelope in ``data``; raises :class:`BadEnvelope` if it is not one a leader could have sent."""
    if len(data) > MAX_ENVELOPE:
        raise BadEnvelope(f"{len(data)} bytes, more than the {MAX_ENVELOPE} an envelope may have")
    try:
        message = orderbook_relay_pb2.Envelope.FromString(data)
    except DecodeError as error:
        raise BadEnvelope(f"not an orderbook.Envelope: {error}") from None
    if message.epoch < 1 or message.sequence < 1:
        raise BadEnvelope(f"epoch {message.epoch} and sequence {message.sequence} must both be at least 1")
    head = (message.epoch, message.sequence, message.published_unix_nanos, message.node)
    body = message.WhichOneof("body")
    if body == "update":
        symbol_update = message.update
        state = SymbolState(symbol_update.state.symbol, tuple(symbol_update.state.exchanges),
                            tuple(symbol_update.state.exchanges_in_step))
        if not symbol_update.symbol or state.symbol != symbol_update.symbol:
            raise BadEnvelope(f"an update of {symbol_update.symbol!r} carries the state of {state.symbol!r}")
        return Update(*head, symbol_update.symbol, symbol_update.summary, state)
    if body == "heartbeat":
        beat = message.heartbeat
        if not beat.symbols or beat.depth < 1 or len(set(beat.symbols)) != len(beat.symbols):
            raise BadEnvelope(f"a heartbeat with symbols {list(beat.symbols)[:5]} and depth {beat.depth}")
        return Heartbeat(*head, tuple(beat.symbols), beat.depth)
    raise BadEnvelope("an envelope with neither an update nor a heartbeat")
