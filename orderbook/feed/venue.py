"""One venue, for every configured symbol: which it lists, the connections that carry them, the REST side they
share, and the drift audits, taken one symbol at a time within the venue's audit budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

import gevent

from orderbook.backoff import Backoff
from orderbook.consolidated import ConsolidatedBook
from orderbook.exchanges.base import Listing, Venue
from orderbook.feed.connection import VenueConnection
from orderbook.feed.lag import ClockOffset
from orderbook.feed.settings import FeedSettings
from orderbook.feed.symbol import SymbolFeed
from orderbook.metrics import VenueMetrics
from orderbook.recording.tap import RecordingHttp, recording_connector
from orderbook.recording.writer import Recorder
from orderbook.rest import AUDIT_SHARE, HttpClient, SnapshotFetcher, venue_session
from orderbook.stream import Connector, websocket_connector

log = logging.getLogger(__name__)

AUDIT_IDLE_CHECK = 1.0
"""How often the audit loop looks again when no book is due (books come in step, and due, at any moment)."""


class VenueFeed:
    def __init__(
        self,
        venue: Venue,
        consolidated: Mapping[str, ConsolidatedBook],
        *,
        on_change: Callable[[str, float], None],
        on_listing: Callable[[str, frozenset[str]], None],
        on_unlisted: Callable[[str, str, str], None],
        metrics: VenueMetrics,
        on_relisted: Callable[[str, str], None] | None = None,
        on_deep_change: Callable[[str], None] = lambda _symbol: None,
        settings: FeedSettings = FeedSettings(),
        http: HttpClient | None = None,
        connect: Connector | None = None,
        spawn: Callable[..., gevent.Greenlet] = gevent.spawn,
        task: Callable[..., gevent.Greenlet] | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        """``books``: each symbol's consolidated book. ``on_listing(venue, unlisted)`` is called once the venue has
        said which symbols it lists; ``on_unlisted(venue, symbol, reason)`` when it turns out not to list one later
        (or one stops trading), ``on_relisted(venue, symbol)`` when one trades there again. ``on_change(symbol,
        received_at)`` when a symbol's book changed, its served top perhaps, ``on_deep_change(symbol)`` when only
        levels below its top did.
        ``spawn(function, *args)`` starts the feed's helpers and ``task(name, function, *args)`` its long-lived
        tasks, the connections and the audit loop (the owner passes its supervisor's,
        :class:`~orderbook.supervision.Supervisor`; without one, tasks are plain helpers). ``recorder``
        (``--record``): every connection and REST answer is recorded there."""
        self.venue = venue
        self.name = venue.name
        self._settings = settings
        self._spawn = spawn
        self._task = task or (lambda _name, function, *args: spawn(function, *args))
        self._clock = ClockOffset()
        """The venue's clock against ours, shared by its connections (:mod:`orderbook.feed.lag`)."""
        self._metrics = metrics
        self._on_listing = on_listing
        self._connect = connect or websocket_connector(
            connect_timeout=settings.connect_timeout, read_timeout=settings.silence_timeout,
            max_frame_bytes=settings.max_frame_bytes)
        http = http or venue_session(venue.rest_base)
        on_taken = None
        if recorder is not None:
            self._connect = recording_connector(venue.name, self._connect, recorder)
            http = recording_http = RecordingHttp(http, recorder, venue.name)
            on_taken = recording_http.taken
        self.fetcher = SnapshotFetcher(
            venue, metrics, http=http, connect_timeout=settings.connect_timeout,
            read_timeout=settings.snapshot_timeout, backoff=Backoff(settings.backoff_base, settings.backoff_cap),
            on_taken=on_taken,
        )
        self.symbols = [
            SymbolFeed(venue, symbol, book, fetcher=self.fetcher, metrics=metrics.symbol(symbol), venue_metrics=metrics,
                       settings=settings, on_change=on_change, on_unlisted=on_unlisted,
                       on_relisted=on_relisted or (lambda _venue, _symbol: None), on_deep_change=on_deep_change,
                       spawn=spawn)
            for symbol, book in consolidated.items()
        ]
        self.connections: list[VenueConnection] = []
        self._listing: gevent.Greenlet | None = None

    def ask_listing(self) -> gevent.Greenlet:
        """Ask the venue which symbols it lists, in a greenlet of its own, once: the owner may wait for the
        answer (the symbols it lists, or None) before it starts anything else, and :meth:`run` takes it then."""
        if self._listing is None:
            self._listing = self._spawn(self.fetcher.listing)
        return self._listing

    def run(self) -> None:
        """Ask the venue what it lists (or take the answer :meth:`ask_listing` had), then start following the rest
        on as few connections as its limits allow, and the audits.

        Every symbol the venue has a name for is subscribed, the ones it does not list or trade now included:
        both venues accept a subscription to a pair they do not list and keep it silent, so that a symbol they list
        later is taken up by the next reading of the listing, on the connection that already carries it."""
        asked, self._listing = self.ask_listing(), None  # a run started again after a failure asks again
        named = self.adopt_listing(asked.get())
        if not named:
            return
        self.connections = self.split(named)
        for connection in self.connections:
            self._task(f"{connection.name} connection", connection.run)
        if self._settings.audit_interval:
            self._task(f"{self.name} audits", self._audit_loop)
        self._task(f"{self.name} listing", self._listing_loop)

    def adopt_listing(self, listing: Listing | None) -> list[SymbolFeed]:
        """Take the venue's first listing (None: it could not be had): leave out the symbols it has no name for or
        does not list, and mark carried the ones a connection will carry, which it returns."""
        named = []
        for feed in self.symbols:
            if self.venue.names(feed.symbol):
                named.append(feed)
            else:
                feed.unlist(f"{self.venue.title} has no name for it (its pairs are ASCII letters and digits)")
        if listing is None:
            log.warning("%s: could not get the symbols it lists; trying every symbol (a snapshot's answer tells)",
                        self.venue.title)
        else:
            for feed in named:
                if feed.symbol not in listing:
                    feed.unlist(f"not in {self.fetcher.listing_url}")
                elif feed.symbol not in listing.trading:  # followed, and served once it trades
                    feed.unlist(f"{listing.statuses[feed.symbol]} in {self.fetcher.listing_url}", trading_later=True)
        self._on_listing(self.name, frozenset(f.symbol for f in self.symbols if not f.listed))
        for feed in named:
            feed.carried = True
        return named

    # -- the listing, read again -------------------------------------------------------------------------------

    def _listing_loop(self) -> None:
        """Read the venue's listing every ``--listing-interval``: a symbol that stops trading leaves, one that
        trades again, or is listed for the first time, comes back with a fresh snapshot (only a symbol the venue
        has no name for never does)."""
        while True:
            gevent.sleep(self._settings.listing_interval)
            listing = self.fetcher.listing(attempts=1)  # the next reading is the retry
            if listing is not None:
                self.apply_listing(listing)

    def apply_listing(self, listing: Listing) -> None:
        where = self.fetcher.listing_url
        for feed in self.symbols:
            if not feed.carried:
                continue
            status = listing.statuses.get(feed.symbol)
            if feed.symbol in listing.trading:
                feed.relist(f"{status} in {where}")
            elif status is None:
                feed.unlist(f"no longer in {where}", trading_later=True)
            else:
                feed.unlist(f"{status} in {where}", trading_later=True)

    def split(self, feeds: Sequence[SymbolFeed], wall_clock: Callable[[], float] = time.time
              ) -> list[VenueConnection]:
        """The connections that carry ``feeds``: one, unless the venue's streams-per-connection limit needs more.
        ``wall_clock``: what their lag is measured against (a recording's replay passes the recorded time)."""
        size = self.venue.max_symbols_per_connection or len(feeds)
        groups = [feeds[start:start + size] for start in range(0, len(feeds), size)]
        return [
            VenueConnection(self.venue, group, connect=self._connect, metrics=self._metrics, settings=self._settings,
                            spawn=self._spawn, clock=self._clock, label=f"#{index + 1}" if len(groups) > 1 else "",
                            wall_clock=wall_clock)
            for index, group in enumerate(groups)
        ]

    # -- the drift audit ---------------------------------------------------------------------------------------

    def _audit_loop(self) -> None:
        """Audit the book that has waited longest, once it is due and the venue's audit budget allows one; several
        books may be audited at once (each waits its REST lag bound before its snapshot).

        The budget is asked first: it is the same for every book, and while the minute is busy it says to wait
        0.05 s at a time, so that looking over every book for the one due (at 500 symbols, 5% of the book
        process's work, most of it in these looks) waits until one could be audited."""
        interval = self._settings.audit_interval
        budget, weight = self.fetcher.budget, self.venue.snapshot_weight()
        auditing: set[str] = set()
        while True:
            # An audit spends its weight only after its REST lag bound (seconds): those under way count as spent
            # already, or every due book would start at once, each recording its diffs while it queued for the
            # budget (at 500 symbols, hundreds of audits and their diffs at once: most of the garbage collector's
            # work).
            delay = budget.delay(weight * (len(auditing) + 1), AUDIT_SHARE)
            if delay > 0:  # the minute is busy: the books' own snapshots come first
                gevent.sleep(delay)
                continue
            due = [feed for feed in self.symbols if feed.symbol not in auditing and feed.auditable]
            if not due:
                gevent.sleep(min(interval, AUDIT_IDLE_CHECK))
                continue
            feed = min(due, key=lambda f: f.due_since)
            wait = feed.due_since + interval - time.monotonic()
            if wait > 0:
                gevent.sleep(min(wait, AUDIT_IDLE_CHECK))
                continue
            auditing.add(feed.symbol)
            self._spawn(self._audit, feed, auditing)
            gevent.sleep(0)  # it records from now: the next pick sees it under way

    @staticmethod
    def _audit(feed: SymbolFeed, auditing: set[str]) -> None:
        try:
            feed.audit_current()
        finally:
            auditing.discard(feed.symbol)
