"""The typed values the parsers produce: nothing past a parser touches raw JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from orderbook.book import PriceLevel
from orderbook.prices import BadNumber, parse_decimal


@dataclass(frozen=True, slots=True)
class BookDiff:
    """Changed levels (absolute amounts; zero removes) and the ids that place the diff in the stream.

    Binance: ``first_id``/``final_id`` are the event's ``U``/``u``. Bitstamp has no sequence number: both are the
    ``microtimestamp``, which the exchange guarantees to increase strictly.
    """

    first_id: int
    final_id: int
    event_time: float
    """When the exchange stamped the event, seconds since the epoch (the exchange's clock, not ours)."""
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    ignored_rows: tuple[str, ...] = ()
    """Why each row the venue should not have sent was dropped (``zero_price``, ``null_row``); usually empty."""
    symbol: str = ""
    """The book it changes, as configured (``ETHBTC``): the connection routes it by this."""


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """A full (or depth-limited) book from REST. ``last_id`` is Binance's lastUpdateId or Bitstamp's microtimestamp."""

    last_id: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    ignored_rows: tuple[str, ...] = ()
    """As for :attr:`BookDiff.ignored_rows`."""


@dataclass(frozen=True, slots=True)
class ReconnectRequest:
    """The exchange asked us to reconnect (Binance ``serverShutdown``, Bitstamp ``bts:request_reconnect``)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A frame that only proves the connection is alive: a subscription ack, a heartbeat reply, a method result."""

    kind: str
    symbol: str = ""
    """The symbol it is about, when it names one (Bitstamp's subscription ack names its channel)."""


Message = BookDiff | ReconnectRequest | Notice

T = TypeVar("T")

Pause = Callable[[], None]
"""Lets whatever else shares the thread run for a moment: the feed passes :func:`~orderbook.hub_turn.pass_turn` for
an audit, ``gevent.sleep`` (0 s) for a snapshot it loads (:meth:`~orderbook.rest.SnapshotFetcher.fetch_once`)."""
PAUSE_EVERY = 100
"""Levels parsed (or compared) between two pauses: ~0.2 ms of work, when none of their numbers were seen before (a
1,000-level snapshot of both sides, new to the parser's cache: 3.6 ms of levels after 0.6 ms of JSON; with 200 a
slice, slices of 0.6-0.75 ms were seen on the hub at 500 symbols). Also the elements of a body's arrays decoded
between two pauses while its JSON is loaded (:func:`~orderbook.exchanges.json_slices.loads_pausing`: ~0.06 ms)."""


class BadMessage(ValueError):
    """A frame or body that cannot be used.

    ``reason`` is a short fixed label (it becomes a metric label). ``loses_data`` says whether the frame may have
    carried a book change that is now lost, in which case the book can no longer be vouched for.
    """

    def __init__(self, reason: str, detail: str, *, loses_data: bool, symbol: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.loses_data = loses_data
        self.symbol = symbol
        """The symbol whose book lost the data, when the frame could be read that far ("": unknown)."""


def parse_levels(raw: Any, *, loses_data: bool = True, pause: Pause | None = None
                 ) -> tuple[tuple[PriceLevel, ...], tuple[str, ...]]:
    """``[["0.05123000", "1.2"], ...]`` -> (((price, amount), ...) as scaled integers, why rows were dropped).

    Rows a venue should not send but does (docs/protocols.md, "Rows a client must survive") are dropped and
    reported, not fatal: a bid at price 0 (seen at the end of every Bitstamp snapshot of some pairs) and a
    ``null`` row (seen at the end of Bitstamp's bids). Anything else malformed raises :class:`BadMessage`.

    ``pause``: called after every :data:`PAUSE_EVERY` levels, so that a caller sharing its thread (the feed's
    hub) can let others run while a deep snapshot is parsed.
    """
    if type(raw) is not list:
        raise BadMessage("bad_levels", f"levels are not a list: {raw!r:.80}", loses_data=loses_data)
    ignored: list[str] = []
    for level in raw:
        if type(level) is not list or len(level) != 2:
            if level is None:
                ignored.append("null_row")
                continue
            raise BadMessage("bad_levels", f"a level is not a [price, amount] pair: {level!r:.80}",
                             loses_data=loses_data)
    try:
        if ignored:
            raw = [level for level in raw if level is not None]
        if pause is None or len(raw) <= PAUSE_EVERY:
            levels = tuple((parse_decimal(price), parse_decimal(amount)) for price, amount in raw)
        else:
            levels = _parse_pausing(raw, pause)
    except BadNumber as error:
        raise BadMessage("bad_number", str(error), loses_data=loses_data) from None
    for price, _ in levels:
        if not price:
            ignored.extend("zero_price" for price, _ in levels if not price)
            levels = tuple(level for level in levels if level[0])
            break
    return levels, tuple(ignored)


def in_slices(items: Sequence[T], pause: Pause | None) -> Iterator[Sequence[T]]:
    """``items``, :data:`PAUSE_EVERY` at a time, with ``pause()`` between two slices (not after the last)."""
    for start in range(0, len(items), PAUSE_EVERY):
        if start and pause is not None:
            pause()
        yield items[start:start + PAUSE_EVERY]


def _parse_pausing(raw: list[Any], pause: Pause) -> tuple[PriceLevel, ...]:
    return tuple((parse_decimal(price), parse_decimal(amount)) for chunk in in_slices(raw, pause)
                 for price, amount in chunk)


def parse_id(raw: Any, what: str) -> int:
    """An id or timestamp: a non-negative integer, or a string of digits (Bitstamp writes them as strings)."""
    if type(raw) is int and 0 <= raw < 10**20:
        return raw
    if type(raw) is str and raw.isascii() and raw.isdigit() and len(raw) <= 20:
        return int(raw)
    raise BadMessage("bad_id", f"{what} is not an id: {raw!r:.40}", loses_data=True)
