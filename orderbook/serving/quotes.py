"""``OrderbookQuotes.Quote`` streams: what filling an amount costs, sent on every change (issue 24).

Every distinct request being streamed (its symbol resolved, side, amount and ``net_of_fees``: its *key*, the
request serialized) has one latest-value :class:`~orderbook.serving.broadcast.SummaryBroadcaster` of serialized
``QuoteUpdate``s, however many streams ask for it; it is made by its first stream and goes with its last, so quotes
are computed only for the requests someone streams. A payload equal to the one before is not published: a stream
gets an update when any of its fields changed, and a slow client skips to the newest, as ``Book`` does.

Where quotes are computed:

* In the book process, :class:`BookQuotes` walks the consolidated books (:meth:`ConsolidatedBook.quote`) for a key
  when it gets its first stream, and again for every key of a symbol after that symbol's books change (the
  application calls :meth:`BookQuotes.refresh` for every change of a venue's book, deeper levels included, not
  only when the served top moves). The walks after a change are not made by the feed that changed the book but by
  :meth:`BookQuotes.run`, a greenlet of their own woken after the summary's streams, latest value too: it takes
  every symbol that changed since it last ran, walks its keys over the books as they are then, yielding between
  keys, so a busy process makes fewer walks (each over the newest books) instead of delaying the ``Book``
  streams, and a quiet one makes them at once.
* A serving process (``--serve-processes``) holds only the top levels of each book, so it computes nothing: its
  :class:`ServedQuotes` asks the book process for a key when the key gets its first stream there (one JSON line up
  the link, :mod:`orderbook.serving.worker`), and publishes the updates the book process sends back for it (QUOTE
  frames, latest value per key: :mod:`orderbook.serving.fanout` follows the book process's own broadcaster for
  it); when the key's last stream there ends, it says so and the book process stops sending. So a quote served by
  any process is the walk over every level the book process holds, computed once per key however many processes
  and clients stream it.
* An edge holds only the top levels too, and no way to ask for more: it answers UNIMPLEMENTED
  (:mod:`orderbook.serving.grpc_server`), naming the book nodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator, Mapping

import gevent
from gevent.event import Event

from orderbook.consolidated import ConsolidatedBook
from orderbook.prices import from_float, to_float
from orderbook.proto import orderbook_quotes_pb2
from orderbook.quote import COST_SCALE, Quote, Side
from orderbook.serving.broadcast import SummaryBroadcaster
from orderbook.serving.symbols import ServedSymbols, Unavailable

_SIDES = {orderbook_quotes_pb2.BUY: Side.BUY, orderbook_quotes_pb2.SELL: Side.SELL}


class BadQuoteRequest(ValueError):
    """An amount that is not finite and > 0, or an unknown side: INVALID_ARGUMENT; the message is the detail."""


def request_key(request: orderbook_quotes_pb2.QuoteRequest, symbol: str) -> bytes:
    """The key of ``request`` for ``symbol`` (its own, resolved): the request as asked, the symbol named."""
    if request.side not in _SIDES:
        raise BadQuoteRequest(f"side {request.side} is neither BUY (0) nor SELL (1)")
    if not (math.isfinite(request.amount) and request.amount > 0):
        raise BadQuoteRequest(f"amount {request.amount!r} is not a finite number above 0")
    return orderbook_quotes_pb2.QuoteRequest(symbol=symbol, side=request.side, amount=request.amount,
                                             net_of_fees=request.net_of_fees).SerializeToString(deterministic=True)


def read_key(key: bytes) -> orderbook_quotes_pb2.QuoteRequest:
    """A key's request (raises ``google.protobuf.message.DecodeError`` or :class:`BadQuoteRequest` for bytes that
    are not a key)."""
    request = orderbook_quotes_pb2.QuoteRequest.FromString(key)
    request_key(request, request.symbol)
    return request


def encode_update(amount: float, quote: Quote | None) -> bytes:
    """The serialized ``QuoteUpdate`` of ``quote`` for ``amount`` as asked; None: nothing can be filled (no venue
    in step)."""
    update = orderbook_quotes_pb2.QuoteUpdate(amount=amount, average_price=math.nan, worst_price=math.nan)
    if quote is not None and quote.filled:
        update.filled = to_float(quote.filled)
        update.average_price = quote.average_price
        update.worst_price = math.nan if quote.worst_price is None else to_float(quote.worst_price)
        update.cost = quote.cost / COST_SCALE
        update.fills.extend(orderbook_quotes_pb2.Fill(exchange=fill.exchange, amount=to_float(fill.amount),
                                                      average_price=fill.average_price) for fill in quote.fills)
    return update.SerializeToString(deterministic=True)


class _Entry:
    """One key's broadcaster and the streams and followers holding it."""

    __slots__ = ("symbol", "broadcaster", "holders")

    def __init__(self, symbol: str, recheck_interval: float) -> None:
        self.symbol = symbol
        self.broadcaster = SummaryBroadcaster(recheck_interval)
        self.holders = 0


class ServedQuotes:
    """The quote streams of one process: a latest-value broadcaster per key streamed. ``opened(key)`` is called
    when a key gets its first holder (its broadcaster is there by then), ``closed(key)`` when its last goes."""

    def __init__(self, served: ServedSymbols, opened: Callable[[bytes], None],
                 closed: Callable[[bytes], None] = lambda key: None, recheck_interval: float = 1.0) -> None:
        self._served = served
        self._opened = opened
        self._closed = closed
        self._recheck_interval = recheck_interval
        self._entries: dict[bytes, _Entry] = {}
        self._by_symbol: dict[str, dict[bytes, None]] = {}
        self.open_streams = 0
        self.sent_total = 0
        self.published_total = 0

    def key(self, request: orderbook_quotes_pb2.QuoteRequest) -> bytes:
        """The key ``request`` streams. Raises :class:`Unavailable` while the books are not served,
        :class:`~orderbook.serving.symbols.UnknownSymbol` and :class:`BadQuoteRequest`."""
        symbol, _ = self._served.resolve(request.symbol, 0)
        return request_key(request, symbol)

    def keys(self, symbol: str) -> list[bytes]:
        """The keys of ``symbol`` streamed now."""
        return list(self._by_symbol.get(symbol, ()))

    def latest(self, key: bytes) -> bytes | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.broadcaster.latest

    def publish(self, key: bytes, payload: bytes, published_at: float | None = None) -> None:
        """``key``'s newest update, sent to its streams if it differs from the last; ignored for a key nobody holds
        (its last stream ended meanwhile)."""
        entry = self._entries.get(key)
        if entry is None or payload == entry.broadcaster.latest:
            return
        self.published_total += 1
        entry.broadcaster.publish(payload, published_at)

    def stream(self, key: bytes, is_active: Callable[[], bool], wake_up: Event | None = None) -> Generator[bytes]:
        """A client's stream of ``key`` (from :meth:`key`): its current update once there is one, then each change;
        counted. Raises :class:`Unavailable` when the books close with its client still there."""
        self.open_streams += 1
        try:
            for payload in self.follow(key, is_active, wake_up):
                self.sent_total += 1
                yield payload
        finally:
            self.open_streams -= 1
        if is_active() and self._served.unavailable is not None:
            raise Unavailable(self._served.unavailable)

    def follow(self, key: bytes, is_active: Callable[[], bool], wake_up: Event | None = None) -> Iterator[bytes]:
        """``key``'s updates, latest value, holding the key meanwhile; not counted as a client stream (a serving
        process's forwarded key is followed this way in the book process)."""
        entry = self._hold(key)
        try:
            def served() -> bool:
                return self._served.unavailable is None and is_active()

            for _, payload in entry.broadcaster.follow(served, wake_up):
                yield payload
        finally:
            self._release(key, entry)

    def _hold(self, key: bytes) -> _Entry:
        entry = self._entries.get(key)
        if entry is not None:
            entry.holders += 1
            return entry
        symbol = orderbook_quotes_pb2.QuoteRequest.FromString(key).symbol
        entry = self._entries[key] = _Entry(symbol, self._recheck_interval)
        entry.holders = 1
        self._by_symbol.setdefault(symbol, {})[key] = None
        self._opened(key)
        return entry

    def _release(self, key: bytes, entry: _Entry) -> None:
        entry.holders -= 1
        if entry.holders or self._entries.get(key) is not entry:
            return
        del self._entries[key]
        keys = self._by_symbol[entry.symbol]
        del keys[key]
        if not keys:
            del self._by_symbol[entry.symbol]
        self._closed(key)

    def close(self) -> None:
        """End every stream and follower (the books are closed: they end with UNAVAILABLE)."""
        for entry in self._entries.values():
            entry.broadcaster.close()


class BookQuotes:
    """The book process's quotes, computed from its consolidated books with the taker fees (scaled, by venue)."""

    def __init__(self, served: ServedSymbols, books: Mapping[str, ConsolidatedBook],
                 fees: Mapping[str, int] | None = None, recheck_interval: float = 1.0) -> None:
        self._books = books
        self._fees = dict(fees or {})
        self.quotes = ServedQuotes(served, self.refresh_key, recheck_interval=recheck_interval)
        self._changed: dict[str, None] = {}
        """The symbols whose books changed since :meth:`run` last took them, with a key streamed."""
        self._wake_up = Event()

    def refresh(self, symbol: str) -> None:
        """``symbol``'s books changed: its keys streamed now are walked again by :meth:`run` (none: nothing to
        do)."""
        if self.quotes.keys(symbol):
            self._changed[symbol] = None
            self._wake_up.set()

    def run(self) -> None:
        """Walk the keys of every symbol changed since the last turn, until killed (the owner's task)."""
        while True:
            self._wake_up.wait()
            gevent.sleep(0)  # after the summary's streams woken with it, and more changes of the same turn
            self._wake_up.clear()
            changed, self._changed = self._changed, {}
            for symbol in changed:
                for key in self.quotes.keys(symbol):
                    self.refresh_key(key)
                    gevent.sleep(0)  # the streams woken meanwhile go first

    def refresh_key(self, key: bytes) -> None:
        request = orderbook_quotes_pb2.QuoteRequest.FromString(key)
        quote = self._books[request.symbol].quote(_SIDES[request.side], from_float(request.amount),
                                                  self._fees if request.net_of_fees else None)
        if quote is None and self.quotes.latest(key) is None:
            return  # the first update waits for a venue in step
        self.quotes.publish(key, encode_update(request.amount, quote))
