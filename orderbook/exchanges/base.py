"""What the service needs to know about one venue, for every symbol it follows there. Pure: builds URLs and
frames, parses what comes back, states the venue's limits and its continuity rule (through its ``sync_class``).

Everything about a venue is in its own module (``binance.py``, ``bitstamp.py``): its endpoints and their default
URLs, the settings only it has, its limits, its frames and its sync rule. :data:`orderbook.exchanges.VENUES` lists
them; the configuration, the feeds and the metrics take every venue from there, so adding a venue is adding a
module (and its simulator side).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeGuard

from orderbook.exchanges.json_slices import loads_pausing
from orderbook.exchanges.messages import (PAUSE_EVERY, BadMessage, BookSnapshot, Message, Notice, Pause, parse_id,
                                          parse_levels)
from orderbook.exchanges.sync import BookSync


@dataclass(frozen=True, slots=True)
class Listing:
    """What a venue's listing says: each symbol it lists (as configured: ``ETHBTC``) and its status there, as the
    venue writes it (Binance ``TRADING``, ``BREAK``...; Bitstamp ``Enabled``, ``Disabled``). ``in`` asks whether the
    venue lists a symbol at all, whatever its status; :attr:`trading` those whose book is executable now."""

    statuses: Mapping[str, str]
    trading: frozenset[str]

    def __contains__(self, symbol: object) -> bool:
        return symbol in self.statuses


class ExchangeError(Exception):
    """The venue answered with an error that retrying cannot fix: a configuration error."""


class ErrorBody(Exception):
    """The venue answered with an error in the body, whatever the HTTP status (Bitstamp sends some with 200)."""

    def __init__(self, code: str, reason: str, *, rate_limited: bool) -> None:
        super().__init__(f"error {code}: {reason}")
        self.code = code
        self.rate_limited = rate_limited


@dataclass(frozen=True, slots=True)
class VenueOption:
    """A setting only one venue has: ``--<venue>-<flag>`` (and ``ORDERBOOK_<VENUE>_<FLAG>``), a whole number."""

    flag: str
    """Its name after ``--<venue>-``; the keyword the venue's constructor takes is the same with underscores."""
    default: int
    low: int
    high: int
    help: str

    @property
    def keyword(self) -> str:
        return self.flag.replace("-", "_")


class Venue(ABC):
    """One venue's wire protocol, symbol-agnostic: one object serves every symbol on every connection."""

    name: ClassVar[str]
    """Lower case, used in flags, metrics and logs."""
    title: ClassVar[str]
    """As people write it, for log lines and errors."""
    default_ws_url: ClassVar[str]
    default_rest_url: ClassVar[str]
    options: ClassVar[tuple[VenueOption, ...]] = ()
    snapshot_id_field: ClassVar[str]
    """The snapshot body's field that places it in the stream."""
    sync_class: ClassVar[type[BookSync]]
    rest_limit: ClassVar[int]
    """The venue's REST allowance a minute, in the unit of :meth:`snapshot_weight`."""
    used_weight_header: ClassVar[str | None] = None
    """A response header in which the venue reports the allowance used this minute, if it has one."""
    status_meanings: ClassVar[dict[int, str]] = {}
    """What the venue means by an HTTP status, for the log line."""
    quiet_snapshot_wait: ClassVar[float | None] = None
    """If set: with no diff this long after the subscription is confirmed, fetch the snapshot anyway."""
    snapshot_names_an_event: ClassVar[bool] = False
    """Whether a snapshot's id is that of an event the stream carries (Binance's lastUpdateId), so that the
    stream always reaches it; Bitstamp's microtimestamp can be later than every diff of a quiet pair."""
    max_symbols_per_connection: ClassVar[int | None] = None
    """The most symbols one connection may carry (None: no limit the venue states); more open more connections."""
    control_interval: ClassVar[float]
    """Seconds between two control messages (subscriptions) on one connection: the venue's message rate limit."""
    rest_lag_bound: ClassVar[float] = 1.0
    """How far the venue's REST book may lag its stream: a drift audit records the stream's diffs this long before
    it asks for its snapshot, so that every change after the snapshot's moment is known."""
    listing_weight: ClassVar[int] = 1
    """What the listing request costs of :attr:`rest_limit`."""

    snapshot_depth: int | None = None
    """The most levels a side of a snapshot has, and so of a book kept (a book's first snapshot may have fewer:
    :meth:`first_snapshot_depth`); None: snapshots are the whole book."""
    snapshot_depth_option: ClassVar[str | None] = None
    """The keyword of the option that sets :attr:`snapshot_depth`, if one does."""

    def __init__(self, ws_url: str | None = None, rest_url: str | None = None) -> None:
        self.ws_base = (ws_url or self.default_ws_url).rstrip("/")
        self.rest_base = (rest_url or self.default_rest_url).rstrip("/")

    # -- the stream --------------------------------------------------------------------------------------------

    @property
    @abstractmethod
    def stream_url(self) -> str:
        """Where a connection goes; its symbols are subscribed by :meth:`subscribe_messages`."""

    @abstractmethod
    def subscribe_messages(self, symbols: Sequence[str]) -> list[str]:
        """The control messages that subscribe ``symbols`` on a new connection, sent :attr:`control_interval` apart."""

    def heartbeat_message(self) -> str | None:
        """An application-level keep-alive whose reply proves the feed is alive; None: use WebSocket pings."""
        return None

    @abstractmethod
    def parse_message(self, raw: str | bytes) -> Message:
        """One WebSocket frame -> a typed message naming its symbol; raises :class:`BadMessage`."""

    def confirms_subscription(self, message: Message) -> TypeGuard[Notice]:
        """Whether ``message`` says the venue has taken a symbol's subscription (starts :attr:`quiet_snapshot_wait`)."""
        return False

    @abstractmethod
    def ready_for_snapshot(self, message: Message) -> bool:
        """Whether, once ``message`` has arrived, the snapshot can be asked for without a hole before it."""

    # -- REST --------------------------------------------------------------------------------------------------

    @abstractmethod
    def snapshot_url(self, symbol: str, depth: int | None = None) -> str:
        """Where the snapshot of ``depth`` levels a side is (None: :attr:`snapshot_depth`)."""

    def snapshot_weight(self, depth: int | None = None) -> int:
        """What one snapshot request of ``depth`` levels a side costs of :attr:`rest_limit` (None:
        :attr:`snapshot_depth`)."""
        return 1

    def first_snapshot_depth(self, served: int) -> int | None:
        """The levels a side a book's first snapshot asks for, when ``served`` levels a side are served (0: every
        level): a venue whose snapshot weighs less when shallower asks for what serving needs, and the book is
        deepened to :attr:`snapshot_depth` once in step (``SymbolFeed.deepen``). By default, as deep as a book is
        kept."""
        return self.snapshot_depth

    def parse_snapshot(self, body: bytes, pause: Pause | None = None) -> BookSnapshot:
        """A REST snapshot body -> a typed snapshot; raises :class:`BadMessage` or :class:`ErrorBody`.
        ``pause``: called now and then while the JSON is loaded (:func:`load_json`), once it is, and while a deep book
        is parsed (:func:`parse_levels`)."""
        snapshot = load_object(body, loses_data=True, pause=pause)
        if pause is not None:
            pause()
        self.check_error_body(snapshot)
        last_id = parse_id(snapshot.get(self.snapshot_id_field), self.snapshot_id_field)
        (bids, ignored_bids), (asks, ignored_asks) = (parse_levels(snapshot.get("bids"), pause=pause),
                                                      parse_levels(snapshot.get("asks"), pause=pause))
        return BookSnapshot(last_id, bids, asks, ignored_bids + ignored_asks)

    def check_error_body(self, body: dict[str, Any]) -> None:  # noqa: B027 - a hook: no check unless overridden
        """Raise :class:`ErrorBody` when a body that came with HTTP 200 is an error (the venue's own shape)."""

    @abstractmethod
    def unknown_symbol(self, status: int, body: bytes) -> bool:
        """Whether a snapshot's error answer says the venue does not list the symbol."""

    @property
    @abstractmethod
    def listing_url(self) -> str:
        """Where the venue lists the symbols it trades."""

    @property
    def listing_fallback_url(self) -> str | None:
        """Where the venue listed them before, asked when :attr:`listing_url` answers 404 (None: nowhere)."""
        return None

    @abstractmethod
    def parse_listing(self, body: bytes) -> Listing:
        """A listing body (from either URL) -> each symbol listed, as configured, and its status; raises
        :class:`BadMessage`."""

    def names(self, symbol: str) -> bool:
        """Whether the venue has a name for ``symbol`` at all (Bitstamp's pairs are ASCII: a Unicode symbol has
        none); one it has not is left out there without asking."""
        return True

    def new_sync(self, watch_depth: int = 0) -> BookSync:
        """A fresh sync, for a book built on a first snapshot (:meth:`first_snapshot_depth`); ``watch_depth`` is how
        many best levels per side are served (see BookSync)."""
        return self.sync_class(watch_depth=watch_depth, snapshot_limit=self.first_snapshot_depth(watch_depth))


def load_json(raw: str | bytes, *, loses_data: bool, pause: Pause | None = None) -> Any:
    """``raw`` decoded; ``pause``: called while the long arrays of a body's object are decoded
    (:func:`~orderbook.exchanges.json_slices.loads_pausing`)."""
    try:
        if pause is not None and type(raw) is bytes:
            return loads_pausing(raw, pause, PAUSE_EVERY)
        return json.loads(raw)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise BadMessage("not_json", str(error), loses_data=loses_data) from None


def load_object(raw: str | bytes, *, loses_data: bool, pause: Pause | None = None) -> dict[str, Any]:
    value = load_json(raw, loses_data=loses_data, pause=pause)
    if type(value) is not dict:
        raise BadMessage("unknown_shape", f"not an object: {raw!r:.80}", loses_data=loses_data)
    return value


def load_list(raw: str | bytes) -> list[Any]:
    value = load_json(raw, loses_data=False)
    if type(value) is not list:
        raise BadMessage("unknown_shape", f"not a list: {raw!r:.80}", loses_data=False)
    return value
