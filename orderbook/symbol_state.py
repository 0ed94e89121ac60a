"""A symbol as the whole service knows it: the shape of its name, how many one process follows, and its state as
``Symbols`` reports it. A book node makes the states (:mod:`orderbook.app`), serves them
(:mod:`orderbook.serving.symbols`) and publishes them (:mod:`orderbook.relay.envelope`), which an edge reads back."""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from orderbook.proto import orderbook_streams_pb2

SYMBOL = re.compile(r"[^\W_]{2,20}")
"""A symbol's name, as ``--symbol`` takes it and a heartbeat must carry it: letters of any script and digits (Binance
lists Unicode symbols since 2025-12, docs/protocols.md), 2 to 20 of them; no whitespace, control character,
punctuation or separator. ASCII letters are upper case (:func:`canonical_symbol`); others are kept as written."""
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def canonical_symbol(text: str) -> str:
    """A symbol as typed -> as the venues list it: ASCII letters upper-cased (``ethbtc`` -> ``ETHBTC``), every other
    character kept as it is (a Unicode symbol is carried intact: upper-casing ``ß`` would make it ``SS``)."""
    return text.strip().translate(_ASCII_UPPER)
MAX_SYMBOLS = 1000
"""Symbols one process follows at most: each is a label value of the per-symbol metrics, which stay bounded."""


@dataclass(frozen=True, slots=True)
class SymbolState:
    """Which venues list ``symbol`` (in configured order) and which of them are in step and served now."""

    symbol: str
    exchanges: tuple[str, ...]
    exchanges_in_step: tuple[str, ...]

    def to_message(self) -> orderbook_streams_pb2.SymbolState:
        return orderbook_streams_pb2.SymbolState(symbol=self.symbol, exchanges=self.exchanges,
                                                 exchanges_in_step=self.exchanges_in_step)

    @classmethod
    def from_bytes(cls, data: bytes) -> SymbolState:
        """A serialized ``orderbook.SymbolState``; raises ``ValueError`` if it is not one."""
        try:
            message = orderbook_streams_pb2.SymbolState.FromString(data)
        except DecodeError as error:
            raise ValueError(f"not an orderbook.SymbolState: {error}") from None
        return cls(message.symbol, tuple(message.exchanges), tuple(message.exchanges_in_step))
