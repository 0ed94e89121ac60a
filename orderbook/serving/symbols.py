"""Every configured symbol's served side: its merged book at each depth a client asked for, and its venues' state.

Each symbol has a :class:`SummaryBroadcaster` at the full ``--depth``; the default symbol's is the one that
``OrderbookAggregator.BookSummary`` streams, exactly as when there was one symbol. A client of
``OrderbookStreams.Book`` may ask for fewer levels a side: that depth's broadcaster is made on its first stream
and publishes only when the top ``depth`` levels changed (cut from the full summary as bytes,
:class:`~orderbook.serving.codec.SummaryFields`), so a change further down wakes none of its streams. It goes
when its last stream ends, so broadcasters exist only for the (symbol, depth) pairs being streamed: at most the
number of symbols times ``--depth``, however many clients come and go, and a publish costs nothing for depths
nobody watches.

The serving processes (``--serve-processes``) each hold a :class:`ServedSymbols` of their own, fed the full
summaries and the states through :meth:`ServedSymbols.follow` here and :meth:`ServedSymbols.publish_summary` there.
An edge (``bin/run-edge``) holds one fed from Redis: it learns the symbols and depth from the leader
(:meth:`ServedSymbols.reconfigure`) and, while it cannot vouch for what it holds, suspends every stream
(:meth:`ServedSymbols.suspend`: they end with :class:`Unavailable`, and new ones are refused) until it can again.
Everything runs on one gevent hub.

A stream never ends as if the book had: a client takes a normal end (gRPC status OK) as the end of the data. It
ends with :class:`Unavailable`, which the server answers UNAVAILABLE with its reason, whenever it is cut off with
its client still there: the server stops (:meth:`ServedSymbols.close`), the books are suspended, its symbol's book
goes, or the default symbol it asked for (``BookSummary``, or ``Book`` without a symbol) becomes another one,
whose summaries its client could not tell from the old one's (a ``Summary`` does not name its symbol).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Protocol

from gevent.event import Event

from orderbook.merge import MergedTop
from orderbook.proto import orderbook_streams_pb2
from orderbook.serving.broadcast import SummaryBroadcaster
from orderbook.serving.codec import SummaryFields, encode_summary
from orderbook.serving.stats import ServingStats
from orderbook.symbol_state import SymbolState

BOOK = "book"
STATE = "state"
"""The kinds of change :meth:`ServedSymbols.follow` reports, each with its symbol."""


def _check(symbols: Sequence[str], depth: int) -> None:
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"a symbol is listed twice in {list(symbols)}")
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth}")


def _suspended(reason: str) -> str:
    return f"no book can be served now: {reason}"


def symbol_list(states: Sequence[SymbolState]) -> bytes:
    """The serialized ``orderbook.SymbolList`` answering ``Symbols``."""
    return orderbook_streams_pb2.SymbolList(symbols=[state.to_message() for state in states]).SerializeToString()


SHUTTING_DOWN = "the server is shutting down; reconnect, possibly elsewhere"
"""Why every stream ends, and new ones are refused, once the books are closed."""


class Unavailable(Exception):
    """A stream ended, or was refused, because the server is stopping, the books cannot be vouched for now (an edge
    whose source went quiet), or what the stream asked for is no longer served as it was (the leader's catalogue
    changed); the client should try again, possibly elsewhere. The message is the whole detail for the client."""


class UnknownSymbol(KeyError):
    """A symbol that is not served here: a client asking for it gets NOT_FOUND. The servers catch this, not any
    ``KeyError``, so that a bug's KeyError is not taken for a client's mistake. A ``KeyError`` still, as a mapping's
    lookup raises."""


class DepthNotServed(ValueError):
    """More levels a side than are served here (``--depth``): a client asking for them gets INVALID_ARGUMENT."""


class Books(Protocol):
    """What the gRPC server serves from: a :class:`ServedSymbols`, or an edge's shards served as one
    (:class:`~orderbook.serving.shards.ShardedSymbols`)."""

    @property
    def symbols(self) -> tuple[str, ...]: ...

    @property
    def depth(self) -> int: ...

    @property
    def unavailable(self) -> str | None: ...

    def resolve(self, symbol: str, depth: int) -> tuple[str, int]: ...

    def stream(self, symbol: str, depth: int, is_active: Callable[[], bool],
               wake_up: Event | None = None) -> Generator[bytes, None, None]: ...

    def states(self) -> list[SymbolState]: ...

    def stats(self) -> ServingStats: ...

    def close(self) -> None: ...


class _ServedSymbol:
    """One symbol's broadcasters and state."""

    __slots__ = ("full", "shallower", "state", "streams")

    def __init__(self, symbol: str, recheck_interval: float) -> None:
        self.full = SummaryBroadcaster(recheck_interval)
        self.shallower: dict[int, SummaryBroadcaster] = {}
        self.state = SymbolState(symbol, (), ())
        self.streams = 0
        """Its streams open now, at any depth (counted before the first summary is read: :meth:`ServedSymbols.read`)."""

    def broadcasters(self) -> tuple[SummaryBroadcaster, ...]:
        return (self.full, *self.shallower.values())

    def wake(self) -> None:
        """Make each of its streams re-check whether it is still served."""
        for broadcaster in self.broadcasters():
            broadcaster.wake()


class _Pending:
    """The changes one follower has not taken yet: each (kind, symbol) once, in the order they first came."""

    __slots__ = ("changes", "event")

    def __init__(self) -> None:
        self.changes: dict[tuple[str, str], None] = {}
        self.event = Event()

    def add(self, change: tuple[str, str]) -> None:
        self.changes[change] = None
        self.event.set()


class ServedSymbols:
    """Every configured symbol's served side: a latest-value SummaryBroadcaster per depth asked for, and its state."""

    def __init__(self, symbols: Sequence[str], depth: int, recheck_interval: float = 1.0) -> None:
        """``symbols[0]`` is the default symbol; ``depth`` is ``--depth``, the most levels a side served.
        ``recheck_interval`` bounds how long a stream sleeps before re-checking that its client is still there.
        No symbols: an edge that has not heard its leader yet (suspended until :meth:`reconfigure`)."""
        _check(symbols, depth)
        self.symbols: tuple[str, ...] = tuple(symbols)
        self.default: str = self.symbols[0] if symbols else ""
        self.depth: int = depth
        self._recheck_interval = recheck_interval
        self._entries = {symbol: _ServedSymbol(symbol, recheck_interval) for symbol in self.symbols}
        self._followers: dict[_Pending, None] = {}
        self._retired = ServingStats()  # the counters of broadcasters that went, so sums never go back
        self._open_streams = 0  # counted here, not summed from broadcasters: a retired one's stay open a moment
        self._closed = False
        self._unavailable: str | None = None if symbols else _suspended("no book yet")
        self.before_read: Callable[[Iterable[str]], None] | None = None
        """Set by a book process that holds back the publishes of a symbol nothing reads (:meth:`read`): called
        with symbols just before their summaries are read by a new stream, a new follower or :meth:`summary`, and
        after that reader counts (so every change from then on is published), to publish what it held back. The
        first summary a reader gets is then the current book, never one held back from before."""

    # -- the book's side -----------------------------------------------------------------------------------

    def publish(self, symbol: str, top: MergedTop, published_at: float | None = None) -> None:
        """``symbol``'s merged top (at the full ``--depth``) changed. ``published_at`` as for
        :meth:`SummaryBroadcaster.publish`."""
        self.publish_summary(symbol, encode_summary(top), published_at)

    def publish_summary(self, symbol: str, payload: bytes, published_at: float | None = None) -> None:
        """:meth:`publish` for a summary already serialized (by :func:`encode_summary`), as the serving processes
        get it. Raises :class:`UnknownSymbol` for a symbol that is not configured."""
        entry = self._entry(symbol)
        if self._closed:
            return
        if published_at is None:
            published_at = time.perf_counter()
        # The followers first (the relay's publisher, the serving processes' links): woken first, they run first,
        # so the summary is on its way to Redis (or another process) before the local streams send it, and the
        # hop to an edge does not wait for this process's own sends. They read the summary when they run, after
        # this call has stored it.
        self._changed((BOOK, symbol))
        entry.full.publish(payload, published_at)
        if entry.shallower:
            fields = SummaryFields(payload)
            for depth, broadcaster in entry.shallower.items():
                cut = fields.top(depth)
                if cut != broadcaster.latest:
                    broadcaster.publish(cut, published_at)

    def read(self, symbol: str) -> bool:
        """Whether anything reads ``symbol``'s summaries now: one of its streams, or a follower (a serving process's
        link, the relay), which reads every symbol. A book process need not publish a symbol nothing reads, as long
        as it publishes it when asked (:attr:`before_read`)."""
        if self._followers:
            return True
        entry = self._entries.get(symbol)
        return entry is not None and entry.streams > 0

    def set_state(self, state: SymbolState) -> None:
        """A symbol's listed or in-step venues changed. Raises :class:`UnknownSymbol` for a symbol that is not
        configured and ``ValueError`` for an in-step venue that does not list it."""
        entry = self._entry(state.symbol)
        if state == entry.state:
            return
        if not set(state.exchanges_in_step) <= set(state.exchanges):
            raise ValueError(f"{state.symbol}: in step on {state.exchanges_in_step}, not all among {state.exchanges}")
        entry.state = state
        self._changed((STATE, state.symbol))

    def _entry(self, symbol: str) -> _ServedSymbol:
        try:
            return self._entries[symbol]
        except KeyError:
            raise UnknownSymbol(symbol) from None

    def serves(self, symbol: str) -> bool:
        return symbol in self._entries

    def state(self, symbol: str) -> SymbolState:
        return self._entries[symbol].state

    def summary(self, symbol: str) -> bytes | None:
        """``symbol``'s latest full summary (None before its first)."""
        entry = self._entries[symbol]
        if self.before_read is not None:
            self.before_read((symbol,))
        return entry.full.latest

    def reconfigure(self, symbols: Sequence[str], depth: int) -> bool:
        """Serve ``symbols`` at ``depth`` from now on (an edge following a leader's catalogue); whether anything
        changed. The streams of a symbol that goes, or of every symbol when the depth changes, end with
        :class:`Unavailable`, and so do those that asked for the default symbol when it becomes another one; a
        symbol that comes has no summary until one is published."""
        if not symbols:
            raise ValueError("at least one symbol is needed")
        _check(symbols, depth)
        symbols = tuple(symbols)
        if symbols == self.symbols and depth == self.depth:
            return False
        kept = set(symbols) if depth == self.depth else set()
        for symbol in list(self._entries):
            if symbol not in kept:
                self._retire(self._entries.pop(symbol))
        for symbol in symbols:
            if symbol not in self._entries:
                self._entries[symbol] = _ServedSymbol(symbol, self._recheck_interval)
                self._changed((STATE, symbol))
        self._entries = {symbol: self._entries[symbol] for symbol in symbols}  # in the catalogue's order
        old_default = self.default
        self.symbols, self.default, self.depth = symbols, symbols[0], depth
        if old_default != self.default and old_default in self._entries:
            self._entries[old_default].wake()  # its streams that asked for the default end; the others go on
        return True

    def _retire(self, entry: _ServedSymbol) -> None:
        """End ``book``'s streams and keep its counters. Its shallower broadcasters are forgotten here, so their
        last streams, ending, find none of theirs to retire again."""
        for broadcaster in entry.broadcasters():
            self._retired.add_counters(broadcaster.stats())
            broadcaster.close()
        entry.shallower.clear()

    @property
    def unavailable(self) -> str | None:
        """The detail every stream ends with and new ones are refused with while suspended (:meth:`suspend`) or
        closed; None while they are served."""
        return self._unavailable

    def suspend(self, reason: str) -> None:
        """End every stream with :class:`Unavailable` (``reason``) and refuse new ones until :meth:`resume`."""
        if self._unavailable is not None:
            return
        self._unavailable = _suspended(reason)
        for entry in self._entries.values():
            entry.wake()

    def resume(self) -> None:
        """Serve streams again (the books can be vouched for); closed books stay closed."""
        if self.symbols and not self._closed:
            self._unavailable = None

    def states(self) -> list[SymbolState]:
        """Every symbol's state, in configured order (the default symbol first)."""
        return [entry.state for entry in self._entries.values()]

    # -- the streams' side ---------------------------------------------------------------------------------

    def resolve(self, symbol: str, depth: int) -> tuple[str, int]:
        """The symbol and depth a request means: ``""`` is the default symbol, 0 the full ``--depth``. Raises
        :class:`Unavailable` while suspended or closed, :class:`UnknownSymbol` for a symbol that is not configured
        and :class:`DepthNotServed` for a depth above ``--depth``."""
        if self._unavailable is not None:
            raise Unavailable(self._unavailable)
        symbol = symbol or self.default
        if symbol not in self._entries:
            raise UnknownSymbol(symbol)
        if depth > self.depth:
            raise DepthNotServed(f"depth {depth} is more than the {self.depth} levels a side served")
        return symbol, depth or self.depth

    def broadcaster(self, symbol: str, depth: int) -> SummaryBroadcaster:
        """The broadcaster of ``symbol`` at ``depth`` levels a side (see :meth:`resolve`); a shallower one is made
        now if it has no stream yet, holding the current summary cut to its depth."""
        return self._broadcaster(*self.resolve(symbol, depth))

    def stream(self, symbol: str, depth: int, is_active: Callable[[], bool],
               wake_up: Event | None = None) -> Generator[bytes, None, None]:
        """A client's stream of ``symbol`` at ``depth`` (:meth:`SummaryBroadcaster.stream`); check the request
        with :meth:`resolve` first, as this raises only once iterated. It ends when the client goes, and raises
        :class:`Unavailable` when the books close or are suspended, its symbol's book goes, or, asked for the
        default symbol (``""``), when that becomes another one. A shallower broadcaster goes when its last stream
        ends: taking it and counting this stream on it happen with no gevent switch between, so none is dropped
        while a stream is about to use it."""
        asked_default = not symbol
        symbol, depth = self.resolve(symbol, depth)
        entry = self._entries[symbol]
        entry.streams += 1  # read from now on: every change is published, and what was held back is, below
        try:
            if self.before_read is not None:
                self.before_read((symbol,))
            broadcaster = self._broadcaster(symbol, depth)
        except BaseException:
            entry.streams -= 1
            raise

        def served() -> bool:
            return self._unavailable is None and (not asked_default or self.default == symbol) and is_active()

        self._open_streams += 1
        try:
            yield from broadcaster.stream(served, wake_up)
        finally:
            self._open_streams -= 1
            entry.streams -= 1
            if broadcaster.open_streams == 0 and entry.shallower.get(depth) is broadcaster:
                del entry.shallower[depth]
                self._retired.add_counters(broadcaster.stats())
        if is_active():
            if self._unavailable is not None:
                raise Unavailable(self._unavailable)
            if asked_default and self.default != symbol:
                raise Unavailable(f"the default symbol changed from {symbol} to {self.default}")
            if self._entries.get(symbol) is not entry:
                raise Unavailable(f"{symbol} is no longer served at depth {depth}")

    def _broadcaster(self, symbol: str, depth: int) -> SummaryBroadcaster:
        entry = self._entries[symbol]
        if depth == self.depth:
            return entry.full
        broadcaster = entry.shallower.get(depth)
        if broadcaster is None:
            broadcaster = entry.shallower[depth] = SummaryBroadcaster(self._recheck_interval)
            if entry.full.latest is not None:
                broadcaster.publish(SummaryFields(entry.full.latest).top(depth), entry.full.published_at)
        return broadcaster

    # -- the serving processes' links ----------------------------------------------------------------------

    def follow(self, is_active: Callable[[], bool]) -> Iterator[list[tuple[str, str]]]:
        """Batches of ``(kind, symbol)`` changes (:data:`BOOK`: a new full summary; :data:`STATE`) not yet taken,
        first every symbol's current book and state, until closed or inactive. Read the values when a batch
        arrives: a follower that falls behind gets each symbol's latest once, not every change it missed, and
        what waits for it is bounded by the number of symbols."""
        pending = _Pending()
        self._followers[pending] = None  # every symbol is read from now on: nothing more is held back
        try:
            if self.before_read is not None:
                self.before_read(self._entries)  # what was held back: published now, each before its first batch
            first: dict[tuple[str, str], None] = {}
            for symbol, entry in self._entries.items():
                if entry.full.latest is not None:
                    first[(BOOK, symbol)] = None
                first[(STATE, symbol)] = None
            pending.changes = {**first, **pending.changes}  # in configured order
            while True:
                pending.event.clear()  # before the checks: a change from here on ends the wait below at once
                if self._closed or not is_active():
                    return
                if pending.changes:
                    batch, pending.changes = list(pending.changes), {}
                    yield batch
                else:
                    pending.event.wait(self._recheck_interval)
        finally:
            self._followers.pop(pending, None)

    def _changed(self, change: tuple[str, str]) -> None:
        for pending in self._followers:
            pending.add(change)

    # -- figures and the end -------------------------------------------------------------------------------

    @property
    def published_total(self) -> int:
        """Full summaries published, every symbol's (each one a change of its book)."""
        return sum(entry.full.published_total for entry in self._entries.values())

    def stats(self) -> ServingStats:
        """Every stream's figures: the streams open now, and the counters of every broadcaster there has been
        (``active_calls`` is the gRPC server's to fill in)."""
        total = ServingStats(open_streams=self._open_streams)
        total.add_counters(self._retired)
        for entry in self._entries.values():
            for broadcaster in entry.broadcasters():
                total.add_counters(broadcaster.stats())
        return total

    def close(self) -> None:
        """End every stream with :class:`Unavailable` (:data:`SHUTTING_DOWN`), refuse new ones, and end every
        follower; later publishes are ignored."""
        self._closed = True
        self._unavailable = SHUTTING_DOWN
        for entry in self._entries.values():
            for broadcaster in entry.broadcasters():
                broadcaster.close()
        for pending in self._followers:
            pending.event.set()
