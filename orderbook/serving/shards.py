"""An edge's books when the deployment's symbols are split over shards: every shard's :class:`ServedSymbols`, served
as one.

Each shard has its own :class:`ServedSymbols`, fed by its own source and suspended on its own: a shard whose leader
is not heard ends its own symbols' streams with :class:`Unavailable` and refuses new ones, while the other shards'
streams go on untouched. :class:`ShardedSymbols` answers the gRPC server as one :class:`ServedSymbols` does
(:class:`~orderbook.serving.symbols.Books`): ``Book`` goes to the shard whose symbol it asks for, ``Symbols`` lists
every shard's symbols, the shards in order of name, a suspended shard's with no venue in step, and the default
symbol (``BookSummary``, or ``Book`` without a symbol) is the one given (``--default-symbol``) or else the first
shard's by name. A symbol two shards name at once (a node that is about to refuse to join, between its first write
and its refusal) is the first shard's by name.

A stream of the default symbol ends with :class:`Unavailable` when the default becomes another symbol (a shard named
before the first appears), as a single :class:`ServedSymbols`'s does: a ``Summary`` does not name its symbol.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

from gevent.event import Event

from orderbook.serving.stats import ServingStats
from orderbook.serving.symbols import SHUTTING_DOWN, ServedSymbols, Unavailable, UnknownSymbol
from orderbook.symbol_state import SymbolState

NO_SHARD = "no book can be served now: no shard's leader has been heard"


class ShardedSymbols:
    """Every shard's books, by shard name; see the module docstring."""

    def __init__(self, default_symbol: str | None = None) -> None:
        """``default_symbol``: the symbol ``BookSummary`` serves; None: the first shard's (by name) default."""
        self._default_symbol = default_symbol
        self._shards: dict[str, ServedSymbols] = {}
        self._retired = ServingStats()
        self._retired_published = 0
        self._closed = False

    # -- the shards ----------------------------------------------------------------------------------------------

    def add(self, shard: str, served: ServedSymbols) -> None:
        self._shards[shard] = served
        self._shards = dict(sorted(self._shards.items()))

    def remove(self, shard: str) -> None:
        """Stop serving ``shard``: its streams end with :class:`Unavailable`."""
        served = self._shards.pop(shard)
        served.suspend(f"shard {shard} is no longer served here")
        self._retired.add_counters(served.stats())
        self._retired_published += served.published_total

    def shard(self, shard: str) -> ServedSymbols:
        return self._shards[shard]

    def owner(self, symbol: str) -> ServedSymbols | None:
        """The books of the shard that serves ``symbol`` (None if none does)."""
        return next((served for served in self._shards.values() if served.serves(symbol)), None)

    # -- what the gRPC server asks (:class:`~orderbook.serving.symbols.Books`) ------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every shard's symbols, the shards by name."""
        return tuple(dict.fromkeys(symbol for served in self._shards.values() for symbol in served.symbols))

    @property
    def default(self) -> str:
        if self._default_symbol is not None:
            return self._default_symbol
        return next((served.default for served in self._shards.values() if served.symbols), "")

    @property
    def depth(self) -> int:
        """The most levels a side any shard serves (each shard checks a request against its own)."""
        return max((served.depth for served in self._shards.values() if served.symbols), default=1)

    @property
    def unavailable(self) -> str | None:
        """Why nothing at all can be served (closed, or no shard served); None while some shard is."""
        if self._closed:
            return SHUTTING_DOWN
        if any(served.unavailable is None for served in self._shards.values()):
            return None
        return NO_SHARD

    def state(self, symbol: str) -> SymbolState:
        """``symbol``'s state as ``Symbols`` shows it: no venue in step while its shard is suspended."""
        served = self.owner(symbol)
        if served is None:
            return SymbolState(symbol, (), ())
        state = served.state(symbol)
        return state if served.unavailable is None else SymbolState(symbol, state.exchanges, ())

    def states(self) -> list[SymbolState]:
        return [self.state(symbol) for symbol in self.symbols]

    def resolve(self, symbol: str, depth: int) -> tuple[str, int]:
        """As :meth:`ServedSymbols.resolve`, from the shard that serves the symbol."""
        if self._closed:
            raise Unavailable(SHUTTING_DOWN)
        symbol = symbol or self.default
        served = self.owner(symbol)
        if served is None:
            if self.unavailable is not None:
                raise Unavailable(self.unavailable)
            raise UnknownSymbol(symbol)
        return served.resolve(symbol, depth)

    def stream(self, symbol: str, depth: int, is_active: Callable[[], bool],
               wake_up: Event | None = None) -> Generator[bytes, None, None]:
        """As :meth:`ServedSymbols.stream`, from the shard that serves the symbol."""
        asked_default = not symbol
        symbol, depth = self.resolve(symbol, depth)
        served = self.owner(symbol)
        assert served is not None  # resolved

        def still_asked() -> bool:
            return is_active() and (not asked_default or self.default == symbol)

        yield from served.stream(symbol, depth, still_asked, wake_up)
        if is_active() and asked_default and self.default != symbol:
            raise Unavailable(f"the default symbol changed from {symbol} to {self.default}")

    def stats(self) -> ServingStats:
        total = ServingStats()
        total.add_counters(self._retired)
        for served in self._shards.values():
            total.add(served.stats())
        return total

    @property
    def published_total(self) -> int:
        return self._retired_published + sum(served.published_total for served in self._shards.values())

    def close(self) -> None:
        self._closed = True
        for served in self._shards.values():
            served.close()
