"""The envelope a leader publishes (``proto/orderbook_relay.proto``): made here, and read back with every check an
edge needs before it trusts one.

Whatever is on the channel or stored in Redis may have been written by anyone who can write that Redis, so
:func:`read` checks every field as a venue's frame is checked: the numbers within :data:`~orderbook.relay.keys.
MAX_EPOCH`, the catalogue within the limits ``--symbol`` and ``--depth`` have, each symbol and venue well formed,
the summary an ``orderbook.Summary`` laid out as the leader lays it out (so that it can be cut to a shallower depth,
:class:`~orderbook.serving.codec.SummaryFields`). A refusal names its reason, the label it is counted under.

With a key (``--relay-key``), every envelope ends with an HMAC-SHA256 of the bytes before it, as field ``mac``, and
one without a valid MAC is refused: no one who can write Redis but lacks the key can forge or alter one. A reader
without a key ignores the field.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message

from orderbook.proto import orderbook_pb2, orderbook_relay_pb2
from orderbook.relay.keys import MAX_EPOCH, NODE
from orderbook.serving.codec import SummaryFields
from orderbook.symbol_state import MAX_SYMBOLS, SYMBOL, SymbolState

MAX_ENVELOPE = 1 << 20
"""A summary is a few KiB at most (--depth 1000 is about 60 KiB); anything near this is not an envelope of ours."""
MAX_DEPTH = 1000
"""The most levels a side a leader serves, as ``--depth`` allows."""
VENUE = re.compile(r"[a-z0-9_-]{1,32}")
MAX_VENUES = 16
MAC_FIELD = b"\x3a\x20"
"""``Envelope.mac`` (field 7, length-delimited) of 32 bytes: how every signed envelope ends."""

MALFORMED = "malformed"
OUT_OF_RANGE = "out_of_range"
BAD_CATALOGUE = "bad_catalogue"
BAD_SUMMARY = "bad_summary"
BAD_MAC = "bad_mac"
"""The reasons :func:`read` refuses an envelope for (``orderbook_relay_rejected_total{reason}``)."""


class BadEnvelope(ValueError):
    """Bytes on the channel or in the hash that are not an envelope a leader could have sent; the message says why,
    :attr:`reason` is what it is counted as."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


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
    levels: int
    """The summary's levels on its longer side: no more than the catalogue's depth."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The leader is alive; its catalogue."""

    epoch: int
    sequence: int
    published_ns: int
    node: str
    symbols: tuple[str, ...]
    depth: int


def update(epoch: int, sequence: int, node: str, state: SymbolState, summary: bytes | None,
           key: bytes | None = None) -> bytes:
    return _sealed(orderbook_relay_pb2.Envelope(
        epoch=epoch, sequence=sequence, published_unix_nanos=time.time_ns(), node=node,
        update=orderbook_relay_pb2.SymbolUpdate(symbol=state.symbol, summary=summary or b"",
                                                state=state.to_message()),
    ), key)


def heartbeat(epoch: int, sequence: int, node: str, symbols: Sequence[str], depth: int,
              key: bytes | None = None) -> bytes:
    return _sealed(orderbook_relay_pb2.Envelope(
        epoch=epoch, sequence=sequence, published_unix_nanos=time.time_ns(), node=node,
        heartbeat=orderbook_relay_pb2.Heartbeat(symbols=symbols, depth=depth),
    ), key)


def _sealed(message: Message, key: bytes | None) -> bytes:
    """The message's bytes, followed by its MAC field when there is a key: protobuf reads fields in any order, so
    the result is the same message with ``mac`` set, and the MAC covers exactly the bytes before it."""
    body = message.SerializeToString()
    return body if key is None else body + MAC_FIELD + hmac.digest(key, body, "sha256")


def _opened(data: bytes, key: bytes) -> bytes:
    """The bytes a valid MAC at the end of ``data`` covers; raises :class:`BadEnvelope` if there is none."""
    body, field, mac = data[:-34], data[-34:-32], data[-32:]
    if field != MAC_FIELD or not hmac.compare_digest(mac, hmac.digest(key, body, "sha256")):
        raise BadEnvelope(BAD_MAC, "no valid MAC: not signed with this deployment's --relay-key")
    return body


def read(data: bytes, key: bytes | None = None) -> Update | Heartbeat:
    """The envelope in ``data``; raises :class:`BadEnvelope` if it is not one a leader could have sent (signed with
    ``key``, when given)."""
    if len(data) > MAX_ENVELOPE:
        raise BadEnvelope(MALFORMED, f"{len(data)} bytes, more than the {MAX_ENVELOPE} an envelope may have")
    if key is not None:
        data = _opened(data, key)
    try:
        message = orderbook_relay_pb2.Envelope.FromString(data)
    except DecodeError as error:
        raise BadEnvelope(MALFORMED, f"not an orderbook.Envelope: {error}") from None
    if not (1 <= message.epoch <= MAX_EPOCH and 1 <= message.sequence <= MAX_EPOCH):
        raise BadEnvelope(OUT_OF_RANGE, f"epoch {message.epoch} and sequence {message.sequence} must both be from 1 "
                          "to 2^53")
    if not NODE.fullmatch(message.node) or message.published_unix_nanos < 1:
        raise BadEnvelope(MALFORMED, f"node {message.node[:60]!r} published at {message.published_unix_nanos}")
    head = (message.epoch, message.sequence, message.published_unix_nanos, message.node)
    body = message.WhichOneof("body")
    if body == "update":
        return _update(head, message.update)
    if body == "heartbeat":
        return _heartbeat(head, message.heartbeat)
    raise BadEnvelope(MALFORMED, "an envelope with neither an update nor a heartbeat")


def _update(head: tuple[int, int, int, str], message: orderbook_relay_pb2.SymbolUpdate) -> Update:
    symbol, venues = message.symbol, message.state
    if not SYMBOL.fullmatch(symbol) or venues.symbol != symbol:
        raise BadEnvelope(MALFORMED, f"an update of {symbol[:40]!r} carries the state of {venues.symbol[:40]!r}")
    if (len(venues.exchanges) > MAX_VENUES or not all(map(VENUE.fullmatch, venues.exchanges))
            or len(set(venues.exchanges)) != len(venues.exchanges)
            or len(set(venues.exchanges_in_step)) != len(venues.exchanges_in_step)
            or not set(venues.exchanges_in_step) <= set(venues.exchanges)):
        raise BadEnvelope(MALFORMED, f"an update of {symbol} listed on {list(venues.exchanges)[:5]} and in step on "
                          f"{list(venues.exchanges_in_step)[:5]}")
    state = SymbolState(symbol, tuple(venues.exchanges), tuple(venues.exchanges_in_step))
    return Update(*head, symbol, message.summary, state, _levels(symbol, message.summary))


def _levels(symbol: str, summary: bytes) -> int:
    """The levels on the longer side of ``summary``, once it is known to be one as the leader lays it out."""
    if not summary:
        return 0
    try:
        SummaryFields(summary)
        parsed = orderbook_pb2.Summary.FromString(summary)
    except (ValueError, DecodeError) as error:  # DecodeError is no ValueError
        raise BadEnvelope(BAD_SUMMARY, f"the summary of {symbol} is not an orderbook.Summary: {error}") from None
    return max(len(parsed.bids), len(parsed.asks))


def _heartbeat(head: tuple[int, int, int, str], beat: orderbook_relay_pb2.Heartbeat) -> Heartbeat:
    count = len(beat.symbols)  # before a string is made of any: a catalogue can be stuffed with 100,000
    if not 1 <= count <= MAX_SYMBOLS or not 1 <= beat.depth <= MAX_DEPTH:
        raise BadEnvelope(BAD_CATALOGUE, f"a heartbeat with {count} symbols (1 to {MAX_SYMBOLS}) at depth "
                          f"{beat.depth} (1 to {MAX_DEPTH})")
    symbols = tuple(beat.symbols)
    if not all(map(SYMBOL.fullmatch, symbols)) or len(set(symbols)) != count:
        raise BadEnvelope(BAD_CATALOGUE, f"a heartbeat with symbols {[s[:40] for s in symbols[:5]]}..., one of "
                          "them malformed or repeated")
    return Heartbeat(*head, symbols, beat.depth)
