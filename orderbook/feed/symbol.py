"""One symbol at one venue: its book kept in step on a connection, rebuilt on its own when it breaks.

A :class:`SymbolFeed` lives as long as the service: the symbol's slot in its consolidated book, its metrics, its
snapshots and audits. On each connection the symbol gets a :class:`SymbolStream`: a fresh :class:`BookSync`
buffering from the subscription, a snapshot fetched once a diff shows where the stream is, and the book served from
the moment it is in step. That first snapshot is sized to what is served (Binance's weighs less when shallower);
a book kept deeper is then deepened, in step and served throughout: rebuilt in place on a deeper snapshot and the
diffs applied since it (:meth:`SymbolFeed.deepen`), at a lower priority than any book's first snapshot. A gap, a
stale snapshot, a failed audit or a bad diff rebuilds that symbol's stream in place (buffer from now, fresh
snapshot): the connection and every other symbol on it keep streaming. A change of the book is published through
the connection's :class:`Batch`: once for all the frames its reader applies together.

A stream is in one :class:`StreamPhase` at a time, and only its own methods move it (:data:`NEXT_PHASES` says
where each phase may go; any other move raises :class:`PhaseError`)::

    SUBSCRIBING --a diff, or the quiet wait--> LOADING --a snapshot fits--> IN_STEP
    LOADING --the venue does not list it--> UNLISTED
    any of these --the book breaks--> REBUILDING --a diff, or the quiet wait--> LOADING ...
    any of these --the session ends, the connection working--> DRAINING (a book that breaks leaves) --> CLOSED
    any of these --the connection is gone--> CLOSED
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from types import MappingProxyType

import gevent

from orderbook.audit import Divergence, compare
from orderbook.backoff import Backoff
from orderbook.consolidated import ConsolidatedBook
from orderbook.exchanges.base import Venue
from orderbook.exchanges.messages import BookDiff, BookSnapshot
from orderbook.exchanges.sync import BookSync, Outcome
from orderbook.feed.lag import ConnectionLag
from orderbook.feed.settings import FeedSettings
from orderbook.hub_turn import pass_turn
from orderbook.metrics import SymbolMetrics, VenueMetrics
from orderbook.rest import AUDIT_SHARE, SNAPSHOT_SHARE, Priority, SnapshotFetcher, SymbolNotListed

log = logging.getLogger(__name__)

TOO_OLD_RETRY_BASE = 0.25
TOO_OLD_RETRY_CAP = 4.0
"""A snapshot older than the stream is asked for again after 0.25 s, then up to 4 s apart (and never faster
than the venue's REST budget allows): a lagging REST book catches up in seconds."""
AUDIT_LOG_LEVELS = 3
DEEPEN_RETRY_BASE = 1.0
DEEPEN_RETRY_CAP = 30.0
"""A deeper snapshot that could not be used (the request failed, the stream had not reached it, the connection is
behind the venue) is asked for again after 1 s, then up to 30 s apart: the book is served meanwhile."""


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
        on_relisted: Callable[[str, str], None] = lambda _venue, _symbol: None,
        on_deep_change: Callable[[str], None] = lambda _symbol: None,
    ) -> None:
        """``on_change(symbol, received_at)``: the book changed, its served top perhaps; ``on_deep_change(symbol)``:
        only levels below the served top did (what walks every level, the quotes, needs to hear it)."""
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
        self._on_relisted = on_relisted
        self._on_deep_change = on_deep_change
        self.listed = True
        """Whether the venue lists the symbol and it trades there: its book is followed and served."""
        self.carried = False
        """Whether a connection carries the symbol's stream, so that it can come back when it trades again."""
        self.first_depth = venue.first_snapshot_depth(book.depth)
        """The levels a side of each book's first snapshot (None: the whole book); books are deepened to the
        venue's ``snapshot_depth`` afterwards when it is more."""
        self._current: SymbolStream | None = None
        self.due_since = time.monotonic()
        """When the book was last audited, or came in step: the next audit is due an audit interval after it."""
        metrics.stats.bid_levels = lambda: self._served_depth("bid_depth")
        metrics.stats.ask_levels = lambda: self._served_depth("ask_depth")
        metrics.stats.lag = self._lag
        metrics.stats.deepening = lambda: self.listed and self._current is not None and self._current.deepening

    @property
    def current(self) -> SymbolStream | None:
        """The stream of the newest connection that carries the symbol (None before the first); a stream handed
        over stays current until its successor opens."""
        return self._current

    def open_stream(self, lag: ConnectionLag, batch: Batch) -> SymbolStream:
        """A new connection carries the symbol: its stream, the current one from now on."""
        self._current = stream = SymbolStream(self, lag, batch)
        if not self.listed:  # not trading there now: carried, to be taken back when it does
            stream.leave()
        return stream

    @property
    def auditable(self) -> bool:
        """Whether the symbol's book can be audited now (listed, and its current stream's book in step and
        served)."""
        return self.listed and self._current is not None and self._current.auditable

    def _lag(self) -> float | None:
        """How far behind the venue the book is (its connection's lag); None while no connection carries it."""
        stream = self._current
        return stream.lag.lag if self.listed and stream is not None else None

    def _served_depth(self, side: str) -> int:
        book = self.book.book(self.venue.name) if self.listed else None
        return getattr(book, side) if book is not None else 0

    def changed(self, received_at: float) -> None:
        """Publish the symbol's book: the venue's part of it changed (``received_at``: when the frame that changed
        it was received, or when it changed)."""
        self._on_change(self.symbol, received_at)

    def deep_changed(self) -> None:
        """Only levels below the served top changed (or the book was deepened): nothing to publish, but every
        level counts for the quotes."""
        self._on_deep_change(self.symbol)

    def unlist(self, reason: str, *, trading_later: bool = False) -> None:
        """The venue does not list the symbol, or it has stopped trading there (``trading_later``: a listing will
        say when it trades again): it is served without this venue from now on (one log line)."""
        if not self.listed:
            return
        self.listed = False
        self.metrics.set_listed(False)
        self.metrics.set_in_step(False)
        if trading_later:
            log.warning("%s: %s does not trade there now, served without it until it does: %s", self.venue.title,
                        self.symbol, reason)
        else:
            log.warning("%s does not list %s, which is served without it: %s", self.venue.title, self.symbol, reason)
        with self.book.lock:
            self.book.detach(self.venue.name)
        stream = self._current
        if stream is not None:
            stream.leave()
        self._on_unlisted(self.venue.name, self.symbol, reason)
        self.changed(time.perf_counter())

    def relist(self, reason: str) -> None:
        """The symbol trades at the venue again: its book is built afresh (a new snapshot) and served once in step
        (one log line)."""
        if self.listed or not self.carried:
            return
        self.listed = True
        self.metrics.set_listed(True)
        log.warning("%s: %s trades there again, rebuilding its book: %s", self.venue.title, self.symbol, reason)
        self._on_relisted(self.venue.name, self.symbol)
        stream = self._current
        if stream is not None:
            stream.take_back()

    # -- the drift audit ---------------------------------------------------------------------------------------

    def audit_current(self) -> None:
        """Audit the current stream's book, and rebuild it if it differs from the venue's, unless it has been
        replaced meanwhile."""
        stream = self._current
        assert stream is not None  # picked while auditable, and a feed's stream is replaced, never unset
        sync = stream.sync
        if self.audit(stream) and stream is self._current:
            stream.on_divergence(sync)

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
        try:
            snapshot = self.fetcher.fetch_once(self.symbol, AUDIT_SHARE, pause=pass_turn)
        except SymbolNotListed as error:
            self.unlist(str(error))
            return []
        if snapshot is None:
            self.metrics.audit("skipped")
            return []
        try:
            return self._compare_with(stream, sync, snapshot)
        finally:
            self.fetcher.taken(self.symbol)

    def _compare_with(self, stream: SymbolStream, sync: BookSync, snapshot: BookSnapshot) -> list[Divergence] | None:
        """:meth:`_compare`'s step once the venue's ``snapshot`` has come."""
        venue = self.venue
        if not sync.in_step:
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
        with self.book.lock:  # the book as it is now, and the diffs that made it: copied, and compared after
            recent = sync.recent  # None if a diff broke the book while this waited for the lock
            levels, applied = (None, ()) if recent is None else (sync.book.levels(), tuple(recent))
        # Compared outside the lock, letting the readers and the streams run every few hundred prices: a deep book
        # compared in one go held every other task up for a millisecond or more (hundreds of books audited a
        # minute made the tail of a client's latency theirs).
        divergences = (None if levels is None
                       else compare(levels, snapshot, applied, venue.snapshot_depth, pass_turn))
        if divergences is None:
            self.metrics.audit("skipped")
            return []
        self._verdict(divergences, snapshot)
        return divergences

    def _verdict(self, divergences: list[Divergence], snapshot: BookSnapshot) -> None:
        """Count a comparison of the book with ``snapshot`` (an audit's, or a deepening's), and log what differs."""
        if not divergences:
            self.metrics.audit("match")
            return
        self.metrics.audit("divergent", len(divergences))
        log.warning("%s: audit: %d levels differ from snapshot %s, rebuilding; first: %s", self.name,
                    len(divergences), snapshot.last_id, "; ".join(str(d) for d in divergences[:AUDIT_LOG_LEVELS]))

    # -- deepening --------------------------------------------------------------------------------------------

    def deepens(self, snapshot: BookSnapshot) -> bool:
        """Whether a book in step on ``snapshot``, its first, is to be deepened: a side of it came as full as a first
        snapshot is asked for (so the venue's book may go on past it) and shallower than books are kept."""
        first, kept = self.first_depth, self.venue.snapshot_depth
        return first is not None and kept is not None and any(
            first <= len(side) < kept for side in (snapshot.bids, snapshot.asks))

    def deepen(self, stream: SymbolStream, sync: BookSync) -> bool:
        """One attempt to rebuild ``sync``'s book in place on a snapshot as deep as books are kept: True when done
        (deepened; or rebuilt, or no longer the stream's), False to try again later.

        The snapshot is asked for at DEEPEN priority, after every first snapshot and rebuild, within the snapshots'
        share of the budget. The book stays in step and served throughout. It records its diffs from the moment the
        request goes out (and on, across attempts, so that a REST book older than that moment is covered by the
        next attempt); once the stream has passed the snapshot, the snapshot and the diffs newer than it make the
        deeper book. Under the lock, the book is compared with the snapshot inside the edges both vouch for, as an
        audit compares (and counted as an audit), and replaced by the deeper book in one step: the levels served are
        the same before and after, only the edges move out. A book that differs is rebuilt, as an audit rebuilds
        it."""
        venue = self.venue
        if not stream.holds(sync):
            return True
        if stream.behind:  # the stream would not reach a fresh snapshot in time: spend nothing now
            return False

        def record() -> None:
            if sync.recent is None:
                sync.start_recording()

        try:
            snapshot = self.fetcher.fetch_once(self.symbol, SNAPSHOT_SHARE, Priority.DEEPEN,
                                               depth=venue.snapshot_depth, on_turn=record)
        except SymbolNotListed as error:
            self.unlist(str(error))
            return True
        if snapshot is None:
            self.metrics.deepening("skipped")
            return False
        try:
            deadline = time.monotonic() + self.settings.stream_lag_bound
            while (stream.holds(sync) and sync.last_id is not None and sync.last_id < snapshot.last_id
                   and time.monotonic() < deadline):
                gevent.sleep(0.05)
            return self.deepen_on(stream, sync, snapshot)
        finally:
            self.fetcher.taken(self.symbol, venue.snapshot_depth)

    def deepen_on(self, stream: SymbolStream, sync: BookSync, snapshot: BookSnapshot) -> bool:
        """:meth:`deepen`'s step once the deeper ``snapshot`` has come and the stream has passed it (or waited its
        bound for it): True when done, False to try again with another (a recording's replay calls it with the
        recorded answer)."""
        venue = self.venue
        with self.book.lock:
            if not stream.holds(sync):
                return True
            recent = sync.recent
            divergences = outcome = None
            if recent is not None and sync.covers(snapshot):
                divergences = compare(sync.book.levels(), snapshot, recent, venue.snapshot_depth)
                if not divergences:
                    outcome = sync.deepen(snapshot, venue.snapshot_depth)
        if divergences is not None:
            self._verdict(divergences, snapshot)
        if divergences:
            self.metrics.deepening("divergent")
            stream.on_divergence(sync)
            return True
        if outcome is None:
            self.metrics.deepening("skipped")
            log.info("%s: the book cannot be deepened on snapshot %s (the stream is at %s); trying again", self.name,
                     snapshot.last_id, sync.last_id)
            return False
        if outcome is not Outcome.APPLIED:
            self.metrics.deepening("divergent")
            stream.on_divergence(sync, outcome.value, f"the deeper snapshot {snapshot.last_id} and the diffs since")
            return True
        self.metrics.deepening("deepened")
        self.deep_changed()  # the same top, more levels below it
        self.due_since = time.monotonic()
        log.info("%s: deepened on snapshot %s (%d bids, %d asks)", self.name, snapshot.last_id, sync.book.bid_depth,
                 sync.book.ask_depth)
        return True


class Batch:
    """What one connection's reader changed in the batch of frames it applies together: each symbol whose book
    changed, noted once, in the order of its first change; all published when the batch closes, each once however
    many of its frames moved it. So the merge, the encoding and the fan-out are paid per batch, not per frame.

    A batch is open only while its reader applies frames that were already waiting, and nothing is published
    meanwhile: a publish shows the books after the batch's last frame, in which a book that broke is already out of
    the consolidated book (detached at once, under its lock), never a state in between. Outside a batch (a snapshot
    loaded, an audit's verdict, the connection's end, the reader waiting for a frame) a change is published at once.
    A symbol's publish carries the moment its first change in the batch was received: the frame-to-publish latency
    is that of the oldest change it shows. A change below the served top (:meth:`deep_changed`) is told the same
    way, once a batch, unless the symbol's top changed in the batch too (that call covers it)."""

    __slots__ = ("_changed", "_deep")

    def __init__(self) -> None:
        self._changed: dict[SymbolFeed, float] | None = None
        """The symbols changed in the open batch, with their first change's moment; None between batches."""
        self._deep: dict[SymbolFeed, None] = {}
        """The symbols changed below their served top in the open batch."""

    def changed(self, feed: SymbolFeed, received_at: float) -> None:
        """``feed``'s book changed: publish it at the end of the open batch, or now if none is open."""
        if self._changed is None:
            feed.changed(received_at)
        else:
            self._changed.setdefault(feed, received_at)

    def deep_changed(self, feed: SymbolFeed) -> None:
        """``feed``'s book changed below its served top: say so at the end of the open batch, or now."""
        if self._changed is None:
            feed.deep_changed()
        else:
            self._deep[feed] = None

    @contextmanager
    def open(self) -> Iterator[None]:
        """A batch, published when it closes, however it closes: a broken connection, or the reader killed while
        it waited for the rest of a frame, publishes what was applied before it."""
        self._changed = {}
        try:
            yield
        finally:
            changed, self._changed = self._changed, None
            deep, self._deep = self._deep, {}
            for feed, received_at in changed.items():
                feed.changed(received_at)
            for feed in deep:
                if feed not in changed:
                    feed.deep_changed()


class StreamPhase(Enum):
    """Where a symbol's stream on one connection stands. Only the stream moves it, along :data:`NEXT_PHASES`."""

    SUBSCRIBING = "subscribing"
    """The connection's first book: diffs are buffered from the subscription until one shows where the stream is
    (or, on a quiet pair, until the quiet wait has passed); then its snapshot is asked for, at START priority."""
    REBUILDING = "rebuilding"
    """The book broke: diffs are buffered from then on, as while subscribing, for a snapshot at REBUILD priority."""
    LOADING = "loading"
    """A loader fetches snapshots until one fits the buffered diffs."""
    IN_STEP = "in_step"
    """The book follows the stream, served unless the connection is behind the venue."""
    UNLISTED = "unlisted"
    """The venue said it does not list the symbol: no snapshot is asked for again (unless the book breaks)."""
    DRAINING = "draining"
    """The session ended while the connection works: the book is kept current until the successor's replaces it,
    never rebuilt (a book that breaks only leaves the merged book), and nothing is fetched for it."""
    CLOSED = "closed"
    """The connection is gone."""


_WAITING = frozenset({StreamPhase.SUBSCRIBING, StreamPhase.REBUILDING})
"""The phases that buffer diffs until one, or the quiet wait, lets the snapshot be asked for."""
_ENDS = frozenset({StreamPhase.REBUILDING, StreamPhase.DRAINING, StreamPhase.CLOSED})
"""Every phase of a working connection can be rebuilt, handed over or closed."""
NEXT_PHASES: Mapping[StreamPhase, frozenset[StreamPhase]] = MappingProxyType({
    StreamPhase.SUBSCRIBING: _ENDS | {StreamPhase.LOADING, StreamPhase.IN_STEP, StreamPhase.UNLISTED},
    StreamPhase.REBUILDING: _ENDS | {StreamPhase.LOADING, StreamPhase.IN_STEP, StreamPhase.UNLISTED},
    StreamPhase.LOADING: _ENDS | {StreamPhase.IN_STEP, StreamPhase.UNLISTED},
    StreamPhase.IN_STEP: _ENDS | {StreamPhase.UNLISTED},
    StreamPhase.UNLISTED: _ENDS,
    StreamPhase.DRAINING: frozenset({StreamPhase.CLOSED}),
    StreamPhase.CLOSED: frozenset(),
})
"""Where each phase may move. A waiting phase goes in step directly when it is given a snapshot without a loader
(:meth:`SymbolStream.install_snapshot`, as the benchmark does)."""


class PhaseError(RuntimeError):
    """A stream was asked to move where its phase does not lead: a bug in the feed."""


class SymbolStream:
    """The symbol's book on one connection, in one :class:`StreamPhase` at a time, moved only by its own methods:
    the frames its connection routes to it, its snapshot loader and quiet timer, an audit's verdict, and the
    session's end (:meth:`hand_over`, :meth:`close`). ``lag``: the connection's lag, which says when the book is
    too far behind the venue to serve; ``batch``: the connection's, through which each change is published."""

    def __init__(self, feed: SymbolFeed, lag: ConnectionLag, batch: Batch) -> None:
        self.feed = feed
        self.symbol = feed.symbol
        self.lag = lag
        self.batch = batch
        self.sync = feed.venue.new_sync(watch_depth=feed.book.depth)
        self._venue_name = feed.venue.name
        self._phase = StreamPhase.SUBSCRIBING
        self._subscription_confirmed = False
        """Not a phase: the venue's confirmation can come in any phase, and it outlives rebuilds (a rebuilt book
        on a confirmed subscription starts its quiet wait at once)."""
        self._loader: gevent.Greenlet | None = None
        self._quiet_timer: gevent.Greenlet | None = None
        self._deepener: gevent.Greenlet | None = None
        """The stream's helpers, kept to be stopped when it moves on."""

    def _move(self, to: StreamPhase) -> None:
        if to not in NEXT_PHASES[self._phase]:
            raise PhaseError(f"{self.feed.name}: a stream {self._phase.value} cannot become {to.value}")
        self._phase = to

    @property
    def serves(self) -> bool:
        """Whether this stream's book is the one kept for the symbol at this venue (served unless behind)."""
        return self.feed.book.book(self._venue_name) is self.sync.book

    @property
    def behind(self) -> bool:
        """Whether the connection is too far behind the venue for this book to be served."""
        return self.lag.behind

    @property
    def auditable(self) -> bool:
        """Whether the book can be audited now: in step, served, not behind the venue, and not being deepened
        (which audits it, and records its diffs meanwhile)."""
        return self.sync.in_step and self.serves and not self.lag.behind and not self.deepening

    def holds(self, sync: BookSync) -> bool:
        """Whether ``sync`` is this stream's and its book in step (a draining or closed book is not deepened)."""
        return self.sync is sync and self._phase is StreamPhase.IN_STEP and sync.in_step

    @property
    def deepening(self) -> bool:
        """Whether the book is in step on a shallow first snapshot, waiting to be deepened."""
        return self._deepener is not None and not self._deepener.dead

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
            self.batch.changed(feed, time.perf_counter())

    def on_diff(self, diff: BookDiff, received_at: float) -> None:
        if self._phase is StreamPhase.UNLISTED:
            return  # not traded there: nothing is buffered for a book no one fetches (HALT still sends diffs)
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
                self.batch.changed(feed, received_at)
            else:
                self.batch.deep_changed(feed)
        elif outcome is Outcome.BUFFERED:
            if self._phase in _WAITING and feed.venue.ready_for_snapshot(diff):
                self._load()
        elif outcome is Outcome.STALE:
            feed.metrics.stale_diff()
        elif outcome.breaks_book:
            if detached:
                feed.metrics.set_in_step(False)
                self.batch.changed(feed, received_at)
            self.rebuild(outcome.value, f"at id {diff.first_id}..{diff.final_id}")

    def on_subscribed(self) -> None:
        """The venue confirmed the subscription: a venue whose snapshot waits for a diff (Bitstamp) takes it
        anyway if none comes, the pair being quiet."""
        if self._subscription_confirmed:
            return
        self._subscription_confirmed = True
        if self._phase in _WAITING:
            self._start_quiet_timer()

    # -- the book's phases -------------------------------------------------------------------------------------

    def _load(self) -> None:
        """SUBSCRIBING or REBUILDING -> LOADING: a diff (or the quiet wait) says the snapshot can be asked for."""
        priority = Priority.REBUILD if self._phase is StreamPhase.REBUILDING else Priority.START
        self._move(StreamPhase.LOADING)
        self._loader = self.feed.spawn(self._load_snapshot, priority)

    def install_snapshot(self, snapshot: BookSnapshot) -> Outcome:
        """Load a snapshot into the sync; once it fits, serve the book: -> IN_STEP. No I/O. A symbol the venue has
        stopped listing meanwhile has nothing to serve: -> UNLISTED, and APPLIED all the same."""
        feed, sync = self.feed, self.sync
        if not feed.listed:
            self._move(StreamPhase.UNLISTED)
            return Outcome.APPLIED
        behind = self.behind
        with feed.book.lock:
            outcome = sync.on_snapshot(snapshot)
            if outcome is Outcome.APPLIED:
                self._move(StreamPhase.IN_STEP)
                feed.book.attach(self._venue_name, sync.book)
                feed.book.set_behind(self._venue_name, behind)
        if outcome is Outcome.APPLIED:
            log.info("%s: in step from snapshot %s (%d bids, %d asks)%s%s", feed.name, snapshot.last_id,
                     sync.book.bid_depth, sync.book.ask_depth,
                     ", served once the connection catches up" if behind else "",
                     f"; to be deepened to {feed.venue.snapshot_depth} levels" if feed.deepens(snapshot) else "")
            feed.metrics.set_in_step(not behind)
            feed.due_since = time.monotonic()
            self.batch.changed(feed, time.perf_counter())
        return outcome

    def rebuild(self, reason: str, detail: str = "") -> None:
        """The book can no longer be vouched for: stop serving it, buffer from now, and fetch a new snapshot
        (-> REBUILDING). A draining book only leaves: its successor's replaces it."""
        if self._phase is StreamPhase.DRAINING:
            self._drop_book(reason)
            log.info("%s: the old connection's book broke (%s) before its successor was in step",
                     self.feed.name, reason)
            return
        self._move(StreamPhase.REBUILDING)
        self._drop_book(reason)
        log.warning("%s: rebuilding the book: %s%s%s", self.feed.name, reason, ": " if detail else "", detail)
        self._start_quiet_timer()  # the subscription stands: a quiet pair sends nothing to wait for

    def leave(self) -> None:
        """The symbol stopped trading at the venue (or it does not list it): -> UNLISTED, its book dropped and no
        diff buffered until :meth:`take_back`. A stream that has ended stays as it is."""
        if self._phase in (StreamPhase.UNLISTED, StreamPhase.DRAINING, StreamPhase.CLOSED):
            return
        self._move(StreamPhase.UNLISTED)
        self._stop_helpers()
        self._leave_book()
        self.sync = self.feed.venue.new_sync(watch_depth=self.feed.book.depth)

    def take_back(self) -> None:
        """The symbol trades again: UNLISTED -> REBUILDING, a fresh snapshot once a diff shows where the stream is
        (or the quiet wait has passed)."""
        if self._phase is StreamPhase.UNLISTED:
            self.rebuild("relisted", "trading again")

    def on_divergence(self, sync: BookSync, reason: str = "audit",
                      detail: str = "levels differ from the venue's") -> None:
        """An audit found ``sync``'s book differs from the venue's (or a deepening, that the deeper book would be
        broken): rebuild it, unless it has been rebuilt, or its connection closed, while the audit ran (it takes
        seconds)."""
        if self.sync is sync and self._phase is not StreamPhase.CLOSED:
            self.rebuild(reason, detail)

    def hand_over(self, reason: str) -> None:
        """-> DRAINING: the session ended for ``reason`` while its connection still works. The book stays served,
        kept current, until the successor's replaces it; the symbol is rebuilt there (counted now)."""
        self._move(StreamPhase.DRAINING)
        self.feed.metrics.rebuild(reason)
        self._stop_helpers()

    def close(self, reason: str | None = None) -> None:
        """-> CLOSED: the connection is gone, and the book leaves the merged book (unless a newer stream's has
        replaced it already). ``reason``: why the session ended, when that ends this book, which the next
        connection rebuilds (counted now); None when a drain ends (counted when handed over) or the service
        stops. A stream closed already stays as it is (its reader closes it the moment its connection breaks, before
        the session's end closes the rest)."""
        if self._phase is StreamPhase.CLOSED:
            return
        self._move(StreamPhase.CLOSED)
        if reason is not None:
            self.feed.metrics.rebuild(reason)
        self._stop_helpers()
        self._leave_book()

    # -- its helpers -------------------------------------------------------------------------------------------

    def _start_quiet_timer(self) -> None:
        wait = self.feed.venue.quiet_snapshot_wait
        if wait is not None and self._subscription_confirmed:
            self._quiet_timer = self.feed.spawn(self._after_quiet_wait, wait)

    def _after_quiet_wait(self, wait: float) -> None:
        gevent.sleep(wait)
        self.quiet_wait_over(wait)

    def quiet_wait_over(self, wait: float) -> None:
        """The quiet wait (``wait`` seconds) has passed: with still no diff buffered, the pair is quiet, and its
        snapshot is asked for (the quiet timer's end; a recording's replay calls it at the recorded moment)."""
        if self._phase in _WAITING and self.sync.buffered == 0:
            log.info("%s: no diff %.0f s after subscribing: a quiet pair, taking its snapshot", self.feed.name, wait)
            self._load()

    def _deepen(self, sync: BookSync) -> None:
        """Deepen ``sync``'s book, attempt after attempt (:meth:`SymbolFeed.deepen`), until it is done or the book
        is no longer this stream's; it records its diffs only meanwhile."""
        retry = Backoff(DEEPEN_RETRY_BASE, DEEPEN_RETRY_CAP)
        try:
            while not self.feed.deepen(self, sync):
                gevent.sleep(retry.next())
        finally:
            sync.stop_recording()

    def _load_snapshot(self, priority: Priority) -> None:
        """Fetch snapshots until one fits the buffered stream, then serve the book. If it fails (a bug), the book
        is rebuilt, so that the symbol is not left waiting for a snapshot nobody fetches, and the exception goes
        on to the supervisor."""
        sync = self.sync
        try:
            self._fetch_until_in_step(sync, priority)
        except Exception:
            if self._loads(sync):
                self.rebuild("loader_failed")
            raise

    def _loads(self, sync: BookSync) -> bool:
        """Whether the loader started for ``sync`` is still wanted. One stopped while it waited may have woken
        before its kill came (a kill is delivered on the hub's next turn): it then does nothing more."""
        return self._phase is StreamPhase.LOADING and self.sync is sync

    def _fetch_until_in_step(self, sync: BookSync, priority: Priority) -> None:
        feed = self.feed
        too_old = Backoff(TOO_OLD_RETRY_BASE, TOO_OLD_RETRY_CAP)
        while True:
            try:
                snapshot = feed.fetcher.fetch(self.symbol, priority, feed.first_depth)
            except SymbolNotListed as error:
                if self._loads(sync):
                    self.refused(str(error))
                return
            try:
                if not self._loads(sync) or self.take_snapshot(snapshot):
                    return
            finally:
                feed.fetcher.taken(self.symbol, feed.first_depth)
            ceiling = too_old.ceiling
            delay = too_old.next()
            log.info("%s: snapshot %s is older than the stream; fetching again in %.2f s (drawn up to %.2f s)",
                     feed.name, snapshot.last_id, delay, ceiling)
            gevent.sleep(delay)  # and then the venue's REST budget, in fetch()
            priority = Priority.REBUILD

    @property
    def loading(self) -> bool:
        """Whether a loader is fetching the book's snapshot (LOADING)."""
        return self._phase is StreamPhase.LOADING

    def take_snapshot(self, snapshot: BookSnapshot) -> bool:
        """The loader's snapshot: the book in step on it (and deepened later, if it is shallow), or rebuilt if the
        buffered diffs do not follow it. False when it is older than the stream: ask for another. (The loader's
        step after each answer; a recording's replay takes the recorded answers through it.)"""
        outcome = self.install_snapshot(snapshot)
        if outcome is Outcome.SNAPSHOT_TOO_OLD:
            return False
        if outcome is not Outcome.APPLIED:
            self.rebuild(outcome.value, "while replaying the buffered diffs")
        elif self._phase is StreamPhase.IN_STEP and self.feed.deepens(snapshot):
            self._deepener = self.feed.spawn(self._deepen, self.sync)
        return True

    def refused(self, reason: str) -> None:
        """The venue answered the loader that it does not list the symbol: LOADING -> UNLISTED."""
        self._move(StreamPhase.UNLISTED)
        self.feed.unlist(reason)

    def _drop_book(self, reason: str) -> None:
        """Count the rebuild, stop the helpers, leave the merged book, and buffer afresh."""
        feed = self.feed
        feed.metrics.rebuild(reason)
        self._stop_helpers()
        self._leave_book()
        self.sync = feed.venue.new_sync(watch_depth=feed.book.depth)

    def _leave_book(self) -> None:
        """Stop serving this stream's book, unless a newer stream's book has replaced it already."""
        feed = self.feed
        with feed.book.lock:
            was_served = feed.book.book(self._venue_name) is self.sync.book
            if was_served:
                feed.book.detach(self._venue_name)
        if was_served:
            feed.metrics.set_in_step(False)
            self.batch.changed(feed, time.perf_counter())

    def _stop_helpers(self) -> None:
        current = gevent.getcurrent()
        for helper in (self._loader, self._quiet_timer, self._deepener):
            if helper is not None and helper is not current:
                helper.kill(block=False)
        self._loader = self._quiet_timer = self._deepener = None
