"""The books a recording's server had, rebuilt offline by the service's own feed: each venue's
:class:`~orderbook.feed.venue.VenueFeed`, its symbols' streams, syncs and consolidated books, driven with the
recorded records in the order they happened, the time standing at each record's.

What the live feed read from its sockets is given to :meth:`VenueConnection.handle_frame
<orderbook.feed.connection.VenueConnection.handle_frame>` a recorded batch at a time (the frames its reader applied
together, published together); what its greenlets asked over REST is answered with the recorded answer when it was
recorded: a loader's snapshot through :meth:`SymbolStream.take_snapshot
<orderbook.feed.symbol.SymbolStream.take_snapshot>`, a deeper one through :meth:`SymbolFeed.deepen_on
<orderbook.feed.symbol.SymbolFeed.deepen_on>` once the stream has passed it, a listing through the venue feed's.
Nothing the feed spawns runs: a quiet pair's wait ends at the recorded moment it would have, and a connection's
lag is measured against the recorded receive times. A connection opened while another of its venue is open is
the live hand-over (the old one's books served until the successor's are in step); one that ended, ended as
recorded. An audit's snapshot is not compared again: the books are those the stream made of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import gevent
from prometheus_client import CollectorRegistry

from orderbook.consolidated import ConsolidatedBook
from orderbook.exchanges import VENUES
from orderbook.exchanges.base import ErrorBody, Listing, Venue
from orderbook.exchanges.messages import BadMessage, BookSnapshot
from orderbook.feed import FeedSettings, VenueFeed
from orderbook.feed.connection import VenueConnection
from orderbook.feed.lag import FRESH_PROBE_INTERVAL, IDLE_CAUGHT_UP, ConnectionLag
from orderbook.feed.symbol import Batch, SymbolFeed, SymbolStream
from orderbook.merge import MergedTop
from orderbook.metrics import Metrics
from orderbook.recording.format import FormatError, Kind, Record, unpack_frames
from orderbook.rest import SymbolNotListed

FEED_LOGGER = "orderbook.feed"


@dataclass(frozen=True, slots=True)
class OutOfStep:
    """A venue's book of the symbol was not served from ``since_ns`` (recorded time), and why."""

    venue: str
    since_ns: int
    why: str


@dataclass(slots=True)
class _Session:
    connection: VenueConnection
    streams: dict[str, SymbolStream]
    lag: ConnectionLag
    batch: Batch
    handed_over: bool = False
    probed_ns: int = 0
    """When its reader last asked whether a frame came fresh (:data:`FRESH_PROBE_INTERVAL` apart)."""


@dataclass(slots=True)
class _Deepening:
    """A deeper snapshot answered, waiting for the stream to pass it (or its bound to run out)."""

    feed: SymbolFeed
    stream: SymbolStream
    snapshot: BookSnapshot
    deadline_ns: int


@dataclass(slots=True)
class _Venue:
    venue: Venue
    feed: VenueFeed
    snapshot_urls: dict[str, tuple[SymbolFeed, bool]] = field(default_factory=dict)
    """Each snapshot URL the feed asks: its symbol, and whether it is a loader's (else a deepening's or an
    audit's)."""
    listing_urls: frozenset[str] = frozenset()
    adopted: bool = False
    """Whether its first listing was taken (or its first connection opened without one)."""
    connection: VenueConnection | None = None
    """What carries its symbols (None: none it lists)."""


class _Notes(logging.Handler):
    """The feed's own log lines, kept (not shown): the latest say why a book left the merged book."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class RecordedBooks:
    """The recording's books as the service kept them, record after record (:meth:`take`). ``start``: the
    recording's :attr:`Kind.START` metadata (symbols, depth, venues and their options)."""

    def __init__(self, start: dict[str, Any]) -> None:
        try:
            self.symbols: list[str] = [str(symbol) for symbol in start["symbols"]]
            self.depth = int(start["depth"])
            venues = [_venue(name, settings) for name, settings in start["venues"].items()]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise FormatError(f"a start record that does not say what was followed ({error!r:.80})") from None
        self.venue_names = [venue.name for venue in venues]
        self.books = {symbol: ConsolidatedBook(self.venue_names, self.depth) for symbol in self.symbols}
        self.now_ns = 0
        """The recorded time the feed stands at: the record being taken, the frame being applied."""
        self._settings = FeedSettings(audit_interval=0)
        metrics = Metrics(CollectorRegistry())
        self._helpers: list[tuple[gevent.Greenlet, Callable[..., Any], tuple[Any, ...], int]] = []
        self._venues: dict[str, _Venue] = {}
        for venue in venues:
            feed = VenueFeed(venue, self.books, on_change=_ignore, on_listing=_ignore, on_unlisted=_ignore,
                             metrics=metrics.exchange(venue.name), settings=self._settings, http=_NoHttp(),
                             connect=_no_connection, spawn=self._spawn)
            state = _Venue(venue, feed, listing_urls=frozenset(
                url for url in (venue.listing_url, venue.listing_fallback_url) if url is not None))
            for symbol_feed in feed.symbols:
                state.snapshot_urls[venue.snapshot_url(symbol_feed.symbol, venue.snapshot_depth)] = (symbol_feed, False)
                state.snapshot_urls[venue.snapshot_url(symbol_feed.symbol, symbol_feed.first_depth)] = (symbol_feed,
                                                                                                       True)
            self._venues[venue.name] = state
        self._sessions: dict[int, _Session] = {}
        self._deepenings: list[_Deepening] = []
        self.notes = _Notes()

    # -- what the feed spawns, held -----------------------------------------------------------------------------

    def _spawn(self, function: Callable[..., Any], *args: Any) -> gevent.Greenlet:
        """Never run: a loader is answered by the recorded answers, a quiet wait ends at its recorded moment
        (:meth:`_quiet_waits`), a deepener is done when its snapshot is (:meth:`_deepen`)."""
        helper = gevent.Greenlet(function, *args)
        self._helpers.append((helper, function, args, self.now_ns))
        return helper

    def _quiet_waits(self) -> None:
        """End the quiet waits whose time has come: what the live timer would have done then."""
        due = [(helper, function, args) for helper, function, args, since_ns in self._helpers
               if not helper.dead and getattr(function, "__name__", "") == "_after_quiet_wait"
               and since_ns + args[0] * 1e9 <= self.now_ns]
        for helper, function, args in due:
            helper.kill(block=False)
            getattr(function, "__self__").quiet_wait_over(args[0])  # noqa: B009 - a bound method's stream
        self._helpers = [entry for entry in self._helpers if not entry[0].dead]

    # -- taking records -----------------------------------------------------------------------------------------

    @contextmanager
    def feed_logs(self) -> Iterator[None]:
        """The feed's log lines kept in :attr:`notes` (and not shown) meanwhile."""
        logger = logging.getLogger(FEED_LOGGER)
        propagate, level = logger.propagate, logger.level
        logger.addHandler(self.notes)
        logger.propagate = False
        logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            logger.removeHandler(self.notes)
            logger.propagate = propagate
            logger.setLevel(level)

    def take(self, record: Record) -> None:
        """One record (frames packed: ``read_directory(..., packed=True)``), as the live service took it."""
        self.now_ns = record.time_ns
        self._quiet_waits()
        kind = record.kind
        if kind is Kind.FRAMES:
            self._frames(record)
        elif kind is Kind.OPENED:
            self._opened(record)
        elif kind is Kind.CLOSED:
            self._closed(record)
        elif kind is Kind.HTTP:
            self._answer(record)
        self._deepen()
        self._idle()

    def last_frame_ns(self, record: Record) -> int:
        """When a record's last frame was received (a batch is published once all of it is applied)."""
        if record.kind is Kind.FRAMES:
            return unpack_frames(record)[-1].time_ns
        return record.time_ns

    def merged_top(self, symbol: str) -> MergedTop:
        return self.books[symbol].merged_top()

    def in_step(self, symbol: str) -> list[str]:
        book = self.books[symbol]
        return [name for name in self.venue_names if book.in_step(name)]

    def _frames(self, record: Record) -> None:
        session = self._sessions.get(record.connection)
        if session is None:
            return  # a connection whose opening was not recorded (deleted with the oldest files)
        frames = unpack_frames(record)
        fresh = frames[0].time_ns - session.probed_ns >= FRESH_PROBE_INTERVAL * 1e9
        if fresh:
            session.probed_ns = frames[0].time_ns
        handle, streams, lag = session.connection.handle_frame, session.streams, session.lag
        with session.batch.open():
            for frame in frames:
                self.now_ns = frame.time_ns
                lag.last_frame_at = received_at = frame.time
                handle(streams, frame.body, received_at, lag, fresh)
                fresh = False

    def _opened(self, record: Record) -> None:
        state = self._venues.get(str(record.meta.get("venue")))
        if state is None:
            return
        if not state.adopted:
            self._adopt(state, None)
        if state.connection is None:
            return
        for session in self._sessions.values():
            if session.connection is state.connection and not session.handed_over:
                session.handed_over = True  # the live hand-over: its books served until the successor's are in step
                for stream in session.streams.values():
                    stream.hand_over("handed_over")
        streams, lag, batch = state.connection.new_streams()
        lag.last_frame_at = record.time
        self._sessions[record.connection] = _Session(state.connection, streams, lag, batch, probed_ns=0)

    def _closed(self, record: Record) -> None:
        session = self._sessions.pop(record.connection, None)
        if session is None:
            return
        reason = None if session.handed_over else str(record.meta.get("reason", "closed"))
        for stream in session.streams.values():
            stream.close(reason)

    def _adopt(self, state: _Venue, listing: Listing | None) -> None:
        """The venue's first listing (None: it had none when its first connection opened), as the feed takes it."""
        state.adopted = True
        named = state.feed.adopt_listing(listing)
        if not named:
            return
        connections = state.feed.split(named, wall_clock=lambda: self.now_ns / 1e9)
        if len(connections) > 1:
            raise FormatError(f"{state.venue.title} carried its symbols on {len(connections)} connections at once: "
                              "rebuilding such a recording is not supported")
        state.connection = connections[0]

    def _answer(self, record: Record) -> None:
        state = self._venues.get(str(record.meta.get("venue")))
        if state is None:
            return
        url, status = str(record.meta.get("url")), record.meta.get("status")
        if url in state.listing_urls:
            self._listing(state, status, record.body)
            return
        target = state.snapshot_urls.get(url)
        if target is None:
            return
        feed, loads = target
        stream = feed.current
        if stream is None:
            return
        venue = state.venue
        if status != 200:
            if stream.loading and isinstance(status, int) and status and venue.unknown_symbol(status, record.body):
                stream.refused(str(SymbolNotListed(venue.title, feed.symbol, f"HTTP {status}")))
            return
        try:
            snapshot = venue.parse_snapshot(record.body)
        except (BadMessage, ErrorBody):
            return  # the loader asked again
        if loads and stream.loading:
            if stream.take_snapshot(snapshot) and stream.deepening:
                stream.sync.start_recording()  # the live deepener records from its request on; this, from now
        elif not loads and stream.deepening:
            deadline = record.time_ns + int(self._settings.stream_lag_bound * 1e9)
            self._deepenings.append(_Deepening(feed, stream, snapshot, deadline))

    def _listing(self, state: _Venue, status: object, body: bytes) -> None:
        if status != 200:
            return
        try:
            listing = state.venue.parse_listing(body)
        except BadMessage:
            return
        if not state.adopted:
            self._adopt(state, listing)
        else:
            state.feed.apply_listing(listing)

    def _deepen(self) -> None:
        """Deepen the books whose deeper snapshot the stream has passed (or waited its bound for)."""
        waiting = []
        for deepening in self._deepenings:
            stream, sync, snapshot = deepening.stream, deepening.stream.sync, deepening.snapshot
            if (stream.holds(sync) and sync.last_id is not None and sync.last_id < snapshot.last_id
                    and self.now_ns < deepening.deadline_ns):
                waiting.append(deepening)
            elif deepening.feed.deepen_on(stream, sync, snapshot) and stream.holds(sync):
                for helper, function, _args, _since in self._helpers:
                    if getattr(function, "__self__", None) is stream and function.__name__ == "_deepen":
                        helper.kill(block=False)
                sync.stop_recording()
        self._deepenings = waiting

    def _idle(self) -> None:
        """A connection behind the venue whose reader had no frame for :data:`IDLE_CAUGHT_UP` has caught up."""
        now = self.now_ns / 1e9
        for session in self._sessions.values():
            if session.lag.behind and now - session.lag.last_frame_at >= IDLE_CAUGHT_UP:
                session.lag.check_idle(now)


def _venue(name: str, settings: dict[str, Any]) -> Venue:
    venue_class = next((venue for venue in VENUES if venue.name == name), None)
    if venue_class is None:
        raise FormatError(f"a venue this checkout does not know: {name!r}")
    return venue_class(settings["ws_url"], settings["rest_url"], **dict(settings.get("options") or {}))


def start_of(records: Iterable[Record]) -> dict[str, Any]:
    """The first :attr:`Kind.START` record's metadata."""
    for record in records:
        if record.kind is Kind.START:
            return record.meta
    raise FormatError("no start record")


def _ignore(*_args: object) -> None:
    pass


class _NoHttp:
    """Offline: every request the feed makes is answered from the recording, never over the network."""

    def get(self, url: str, *, timeout: tuple[float, float]) -> Any:
        raise AssertionError(f"a request offline: {url}")


def _no_connection(url: str) -> Any:
    raise AssertionError(f"a connection offline: {url}")
