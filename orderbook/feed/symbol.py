"""One symbol at one venue: its book kept in step on a connection, rebuilt on its own when it breaks.

A :class:`SymbolFeed` lives as long as the service: the symbol's slot in its consolidated book, its metrics, its
snapshots and audits. On each connection the symbol gets a :class:`SymbolStream`: a fresh :class:`BookSync`
buffering from the subscription, a snapshot fetched once a diff shows where the stream is, and the book served from
the moment it is in step. A gap, a stale snapshot, a failed audit or a bad diff rebuilds that symbol's stream in
place (buffer from now, fresh snapshot): the connection and every other symbol on it keep streaming.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent

from orderbook.audit import Divergence, compare
from orderbook.backoff import Backoff
from orderbook.consolidated import ConsolidatedBook
from orderbook.exchanges.base import Venue
from orderbook.exchanges.messages import BookDiff, BookSnapshot
from orderbook.exchanges.sync import BookSync, Outcome
from orderbook.feed.lag import ConnectionLag
from orderbook.feed.settings import FeedSettings
from orderbook.metrics import SymbolMetrics, VenueMetrics
from orderbook.rest import AUDIT_SHARE, Priority, SnapshotFetcher, UnknownSymbol

log = logging.getLogger(__name__)

TOO_OLD_RETRY_BASE = 0.25
TOO_OLD_RETRY_CAP = 4.0
"""A snapshot older than the stream is asked for again after 0.25 s, then up to 4 s apart (and never faster
than the venue's REST budget allows): a lagging REST book catches up in seconds."""
AUDIT_LOG_LEVELS = 3


class SymbolFeed:
    """``symbol`` at ``venue``, across every connection that carries it."""

    def __init__(
        self,
        venue: Venue,
        symbol: str,
        book: ConsolidatedBook,
        *,
        fetcher: SnapshotFetcher,
        metrics: SymbolMetrics,
        venue_metrics: VenueMetrics,
        settings: FeedSettings,
        on_change: Callable[[str, float], None],
        on_unlisted: Callable[[str, str, str], None],
        spawn: Callable[..., gevent.Greenlet],
    ) -> None:
        self.venue = venue
        self.symbol = symbol
        self.name = f"{venue.name} {symbol}"
        self.book = book
        self.fetcher = fetcher
        self.metrics = metrics
        self.venue_metrics = venue_metrics
        self.settings = settings
        self.spawn = spawn
        self._on_change = on_change
        self._on_unlisted = on_unlisted
        self.listed = True
        self.current: SymbolStream | None = None
        """The stream of the connection that carries the symbol now (not one being drained)."""
        self.due_since = time.monotonic()
        """When the book was last audited, or came in step: the next audit is due an audit interval after it."""
        metrics.stats.bid_levels = lambda: self._served_depth("bid_depth")
        metrics.stats.ask_levels = lambda: self._served_depth("ask_depth")
        metrics.stats.lag = self._lag

    def _lag(self) -> float | None:
        """How far behind the venue the book is (its connection's lag); None while no connection carries it."""
        stream = self.current
        return stream.lag.lag if self.listed and stream is not None and stream.lag is not None else None

    def _served_depth(self, side: str) -> int:
        book = self.book.book(self.venue.name) if self.listed else None
        return getattr(book, side) if book is not None else 0

    def changed(self, received_at: float) -> None:
        self._on_change(self.symbol, received_at)

    def unlist(self, reason: str) -> None:
        """The venue does not list the symbol: it is served without this venue from now on (one log line)."""
        if not self.listed:
            return
        self.listed = False
        self.metrics.set_listed(False)
        self.metrics.set_in_step(False)
        log.warning("%s does not list %s, which is served without it: %s", self.venue.title, self.symbol, reason)
        with self.book.lock:
            self.book.detach(self.venue.name)
        self._on_unlisted(self.venue.name, self.symbol, reason)
        self.changed(time.perf_counter())

    # -- the drift audit ---------------------------------------------------------------------------------------

    def audit(self, stream: SymbolStream) -> list[Divergence]:
        """One audit: the levels that differ (logged and counted), or [] when they agree or it was skipped.

        The book records the diffs it applies from the start, and the snapshot is only asked for the venue's
        REST lag bound later: a REST book that lags the stream (Bitstamp's, by up to seconds) is then still newer
        than the first recorded diff, so every change made after its moment is known."""
        sync = stream.sync
        due_since, self.due_since = self.due_since, time.monotonic()
        sync.start_recording()
        try:
            gevent.sleep(self.venue.rest_lag_bound)
            if stream.sync is not sync or not sync.in_step:
                self.metrics.audit("skipped")
                return []
            divergences = self._compare(stream, sync)
            if divergences is None:  # behind the venue: audited once it has caught up, never counted as drift
                self.due_since = due_since
                self.metrics.audit("deferred")
                return []
            return divergences
        finally:
            sync.stop_recording()

    def _compare(self, stream: SymbolStream, sync: BookSync) -> list[Divergence] | None:
        """The levels that differ, [] when they agree or the audit was skipped, None when the book is behind the
        venue (a book seconds behind differs from any fresh snapshot without having drifted)."""
        if stream.behind:
            return None
        venue = self.venue
        try:
            snapshot = self.fetcher.fetch_once(self.symbol, AUDIT_SHARE)
        except UnknownSymbol as error:
            self.unlist(str(error))
            return []
        if snapshot is None or not sync.in_step:
            self.metrics.audit("skipped")
            return []
        # The stream can lag the REST book: wait until it has passed the snapshot's moment, or for the bound.
        deadline = time.monotonic() + self.settings.stream_lag_bound
        while (sync.in_step and sync.last_id is not None and sync.last_id < snapshot.last_id
               and time.monotonic() < deadline):
            gevent.sleep(0.05)
        since = sync.recorded_since()
        if since is None or since > snapshot.last_id or (
            venue.snapshot_names_an_event and sync.last_id is not None and sync.last_id < snapshot.last_id
        ):
            log.info("%s: audit skipped: the book cannot be compared with snapshot %s", self.name, snapshot.last_id)
            self.metrics.audit("skipped")
            return []
        if stream.behind:
            return None
        with self.book.lock:
            recent = sync.recent  # None if a diff broke the book while this waited for the lock
            divergences = None if recent is None else compare(sync.book, snapshot, recent, venue.snapshot_depth)
        if divergences is None:
            self.metrics.audit("skipped")
            return []
        if not divergences:
            self.metrics.audit("match")
            return []
        self.metrics.audit("divergent", len(divergences))
        log.warning("%s: audit: %d levels differ from snapshot %s, rebuilding; first: %s", self.name,
                    len(divergences), snapshot.last_id, "; ".join(str(d) for d in divergences[:AUDIT_LOG_LEVELS]))
        return divergences


class SymbolStream:
    """The symbol's book on one connection. ``draining``: the connection is being replaced; the book is kept
    current until the successor's is in step, and never rebuilt. ``lag``: the connection's lag, which says when
    the book is too far behind the venue to serve (None: never, as in tests that drive a stream alone)."""

    def __init__(self, feed: SymbolFeed, *, draining: bool = False, lag: ConnectionLag | None = None) -> None:
        self.feed = feed
        self.symbol = feed.symbol
        self.draining = draining
        self.lag = lag
        self.sync = feed.venue.new_sync(watch_depth=feed.book.depth)
        self._venue_name = feed.venue.name
        self._snapshot_requested = False
        self._rebuilt = False
        self._loader: gevent.Greenlet | None = None
        self._quiet_timer: gevent.Greenlet | None = None
        self._subscribed = False

    @property
    def serves(self) -> bool:
        """Whether this stream's book is the one kept for the symbol at this venue (served unless behind)."""
        return self.feed.book.book(self._venue_name) is self.sync.book

    @property
    def behind(self) -> bool:
        """Whether the connection is too far behind the venue for this book to be served."""
        return self.lag is not None and self.lag.behind

    def set_behind(self, behind: bool) -> None:
        """The connection fell behind the venue (or caught up): the book leaves the merged book meanwhile (or comes
        back), kept current and never rebuilt for it."""
        feed = self.feed
        with feed.book.lock:
            serves = feed.book.book(self._venue_name) is self.sync.book
            if serves:
                feed.book.set_behind(self._venue_name, behind)
        if serves:
            feed.metrics.set_in_step(not behind)
            feed.changed(time.perf_counter())

    def on_diff(self, diff: BookDiff, received_at: float) -> None:
        feed, sync = self.feed, self.sync
        book = feed.book
        with book.lock:
            outcome = sync.on_diff(diff)
            detached = outcome.breaks_book and book.book(self._venue_name) is sync.book
            if detached:  # at once: the sync has cleared the book
                book.detach(self._venue_name)
        if outcome is Outcome.APPLIED:
            feed.venue_metrics.event_age(time.time() - diff.event_time)
            if sync.top_changed:
                feed.changed(received_at)
        elif outcome is Outcome.BUFFERED:
            if not self._snapshot_requested and not self.draining and feed.venue.ready_for_snapshot(diff):
                self._request_snapshot()
        elif outcome is Outcome.STALE:
            feed.metrics.stale_diff()
        elif outcome.breaks_book:
            if detached:
                feed.metrics.set_in_step(False)
                feed.changed(received_at)
            self.rebuild(outcome.value, f"at id {diff.first_id}..{diff.final_id}")

    def on_subscribed(self) -> None:
        """The venue confirmed the subscription: a venue whose snapshot waits for a diff (Bitstamp) takes it
        anyway if none comes, the pair being quiet."""
        self._subscribed = True
        self._start_quiet_timer()

    def _start_quiet_timer(self) -> None:
        wait = self.feed.venue.quiet_snapshot_wait
        if wait is None or self.draining or self._quiet_timer is not None or not self._subscribed:
            return

        def quiet() -> None:
            gevent.sleep(wait)
            self._quiet_timer = None
            if self.sync.buffered == 0 and not self.sync.in_step and not self._snapshot_requested:
                log.info("%s: no diff %.0f s after subscribing: a quiet pair, taking its snapshot",
                         self.feed.name, wait)
                self._request_snapshot()

        self._quiet_timer = self.feed.spawn(quiet)

    def _request_snapshot(self) -> None:
        self._snapshot_requested = True
        self._loader = self.feed.spawn(self._load_snapshot, Priority.REBUILD if self._rebuilt else Priority.START)

    def _load_snapshot(self, priority: Priority) -> None:
        """Fetch snapshots until one fits the buffered stream, then serve the book. If it fails (a bug), the book
        is rebuilt, so that the symbol is not left waiting for a snapshot nobody fetches, and the exception goes
        on to the supervisor."""
        try:
            self._fetch_until_in_step(priority)
        except Exception:
            self._loader = None
            self.rebuild("loader_failed")
            raise

    def _fetch_until_in_step(self, priority: Priority) -> None:
        feed = self.feed
        too_old = Backoff(TOO_OLD_RETRY_BASE, TOO_OLD_RETRY_CAP)
        while True:
            try:
                snapshot = feed.fetcher.fetch(self.symbol, priority)
            except UnknownSymbol as error:
                self._loader = None
                feed.unlist(str(error))
                return
            outcome = self.install_snapshot(snapshot)
            if outcome is Outcome.APPLIED:
                self._loader = None
                return
            if outcome is Outcome.SNAPSHOT_TOO_OLD:
                delay = too_old.next()
                log.info("%s: snapshot %s is older than the stream; fetching again in %.2f s",
                         feed.name, snapshot.last_id, delay)
                gevent.sleep(delay)  # and then the venue's REST budget, in fetch()
                priority = Priority.REBUILD
                continue
            self._loader = None
            self.rebuild(outcome.value, "while replaying the buffered diffs")
            return

    def install_snapshot(self, snapshot: BookSnapshot) -> Outcome:
        """Load a snapshot into the sync; once it fits, serve the book. No I/O."""
        feed, sync = self.feed, self.sync
        if not feed.listed:
            return Outcome.APPLIED  # left out meanwhile: nothing to serve
        behind = self.behind
        with feed.book.lock:
            outcome = sync.on_snapshot(snapshot)
            if outcome is Outcome.APPLIED:
                feed.book.attach(self._venue_name, sync.book)
                feed.book.set_behind(self._venue_name, behind)
        if outcome is Outcome.APPLIED:
            log.info("%s: in step from snapshot %s (%d bids, %d asks)%s", feed.name, snapshot.last_id,
                     sync.book.bid_depth, sync.book.ask_depth,
                     ", served once the connection catches up" if behind else "")
            feed.metrics.set_in_step(not behind)
            feed.due_since = time.monotonic()
            feed.changed(time.perf_counter())
        return outcome

    def rebuild(self, reason: str, detail: str = "") -> None:
        """The book can no longer be vouched for: stop serving it, buffer from now, and fetch a new snapshot."""
        feed = self.feed
        feed.metrics.rebuild(reason)
        self._stop_helpers()
        self.leave_book()
        self.sync = feed.venue.new_sync(watch_depth=feed.book.depth)
        self._snapshot_requested = False
        self._rebuilt = True
        if self.draining:
            log.info("%s: the old connection's book broke (%s) before its successor was in step", feed.name, reason)
            return
        log.warning("%s: rebuilding the book: %s%s%s", feed.name, reason, ": " if detail else "", detail)
        self._start_quiet_timer()  # the subscription stands: a quiet pair sends nothing to wait for

    def leave_book(self) -> None:
        """Stop serving this stream's book, unless a newer stream's book has replaced it already."""
        feed = self.feed
        with feed.book.lock:
            was_served = feed.book.book(self._venue_name) is self.sync.book
            if was_served:
                feed.book.detach(self._venue_name)
        if was_served:
            feed.metrics.set_in_step(False)
            feed.changed(time.perf_counter())

    def close(self, *, keep_serving: bool = False) -> None:
        """The connection is gone (or handed over, ``keep_serving``: a drain takes the stream on)."""
        self._stop_helpers()
        if not keep_serving:
            self.leave_book()

    def _stop_helpers(self) -> None:
        current = gevent.getcurrent()
        for helper in (self._loader, self._quiet_timer):
            if helper is not None and helper is not current:
                helper.kill(block=False)
        self._loader = self._quiet_timer = None
