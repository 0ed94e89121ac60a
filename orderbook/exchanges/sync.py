"""Keeping one exchange's book in step: a pure state machine, fed snapshots and diffs, answering what it did.

The procedure is the same for both venues (docs/protocols.md): buffer diffs from the moment the stream is open, load
the snapshot, drop the buffered diffs it already reflects, apply the rest, then apply live diffs. What differs is
only the continuity rule, which each venue's module states in its subclass's :meth:`BookSync._continuity`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from enum import Enum

from orderbook.book import VenueBook
from orderbook.exchanges.messages import BookDiff, BookSnapshot


RECENT_DIFFS = 10_000
"""The most diffs recorded for one drift audit (minutes of any stream); past it the oldest are forgotten, and an
audit whose snapshot is older than what is kept cannot tell changes apart and is skipped."""


class Outcome(Enum):
    BUFFERED = "buffered"
    """Not in step yet: kept for when the snapshot arrives."""
    APPLIED = "applied"
    """The book changed (or a snapshot was loaded)."""
    STALE = "stale"
    """Already reflected in the book: ignored."""
    GAP = "gap"
    """Binance: update ids were missed. The book is no longer valid and must be rebuilt."""
    OUT_OF_ORDER = "out_of_order"
    """Bitstamp: a diff not newer than the last applied one. The book must be rebuilt."""
    SNAPSHOT_TOO_OLD = "snapshot_too_old"
    """The snapshot predates the first buffered diff: fetch another one, keep the buffer."""
    OVERFLOW = "overflow"
    """Too many diffs buffered while waiting for a snapshot: start over rather than grow without bound."""
    CROSSED = "crossed"
    """The venue's own book has its best bid at or above its best ask: impossible if it were right."""
    PAST_SNAPSHOT = "past_snapshot"
    """Fewer than the served depth of levels remain inside a depth-limited snapshot's range on a side (the
    market swept through it): the levels that would be served next are unknown. Start over from a new snapshot."""

    @property
    def breaks_book(self) -> bool:
        return self in _BREAKING


_BREAKING = frozenset({Outcome.GAP, Outcome.OUT_OF_ORDER, Outcome.OVERFLOW, Outcome.CROSSED, Outcome.PAST_SNAPSHOT})


def edges(snapshot: BookSnapshot, limit: int | None) -> tuple[int | None, int | None]:
    """How far a book built on ``snapshot`` can vouch for its levels: (lowest bid, highest ask), each None when
    that side came with fewer than ``limit`` levels (it is the venue's whole side) or ``limit`` is None."""
    bids, asks = snapshot.bids, snapshot.asks
    return (bids[-1][0] if limit is not None and len(bids) >= limit else None,
            asks[-1][0] if limit is not None and len(asks) >= limit else None)


class BookSync(ABC):
    """One exchange's book and the rules that keep it exact. Not in step until a snapshot has been loaded."""

    def __init__(self, max_buffered: int = 100_000, watch_depth: int = 0, snapshot_limit: int | None = None) -> None:
        """``watch_depth``: how many best levels per side are served; see :attr:`top_changed`.

        ``snapshot_limit``: the most levels a side of a snapshot has (Binance's ``limit``); a side that comes
        that full may go deeper at the venue, so the book is bounded at its worst price (:class:`VenueBook`).
        None: snapshots are the whole book.
        """
        self.book = VenueBook()
        self.top_changed = False
        """Whether the last diff applied may have changed the best ``watch_depth`` levels (always, if 0)."""
        self._watch_depth = watch_depth
        self._snapshot_limit = snapshot_limit
        self.in_step = False
        self.last_id: int | None = None
        self.snapshot_id: int | None = None
        self._buffer: list[BookDiff] = []
        self._max_buffered = max_buffered
        self.recent: deque[BookDiff] | None = None
        """While a drift audit runs (:meth:`start_recording`): the diffs applied since it began, for it to tell a
        divergence from a change made after its snapshot. None otherwise: kept for every book all the time, they
        were most of the objects the garbage collector walked (140 ms pauses at 200 symbols)."""
        self._recorded_after: int | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def reset(self) -> None:
        """Forget everything: the next snapshot starts a new book."""
        self.book.clear()
        self.in_step = False
        self.last_id = None
        self.snapshot_id = None
        self._buffer.clear()
        self.recent = None

    def on_diff(self, diff: BookDiff) -> Outcome:
        if not self.in_step:
            if len(self._buffer) >= self._max_buffered:
                self.reset()
                return Outcome.OVERFLOW
            self._buffer.append(diff)
            return Outcome.BUFFERED
        last_id, snapshot_id = self.last_id, self.snapshot_id
        assert last_id is not None and snapshot_id is not None  # in step: both set by on_snapshot
        outcome = self._continuity(diff, last_id, snapshot_id)
        if outcome is Outcome.APPLIED:
            self.top_changed = top_changed = self.book.apply(diff.bids, diff.asks, self._watch_depth)
            self.last_id = diff.final_id
            if self.recent is not None:
                self.recent.append(diff)
            if top_changed:  # a cross, or a side left short, needs a change within the served levels
                outcome = self._check_book()
        if outcome.breaks_book:
            self.reset()
        return outcome

    def on_snapshot(self, snapshot: BookSnapshot) -> Outcome:
        """Load a snapshot and replay the buffered diffs it does not already reflect."""
        pending = [diff for diff in self._buffer if diff.final_id > snapshot.last_id]
        if self._buffer and self._snapshot_too_old(snapshot, self._buffer[0], pending[0] if pending else None):
            return Outcome.SNAPSHOT_TOO_OLD
        self._buffer.clear()
        self.book.load(snapshot.bids, snapshot.asks, *edges(snapshot, self._snapshot_limit))
        self.last_id = self.snapshot_id = snapshot.last_id
        self.in_step = True
        outcome = self._check_book()
        if outcome.breaks_book:
            self.reset()
            return outcome
        for diff in pending:
            outcome = self.on_diff(diff)
            if outcome.breaks_book:
                return outcome
        return Outcome.APPLIED

    def covers(self, snapshot: BookSnapshot) -> bool:
        """Whether the book can be told apart from ``snapshot`` exactly, or rebuilt on it: in step, recording, every
        diff applied after the snapshot's moment recorded, and the stream at or past that moment."""
        since, last_id = self.recorded_since(), self.last_id
        return since is not None and last_id is not None and since <= snapshot.last_id <= last_id

    def deepen(self, snapshot: BookSnapshot, limit: int | None) -> Outcome | None:
        """Rebuild the book on a deeper snapshot (``limit`` levels a side at most; None: the whole book) and the
        recorded diffs newer than it, in one step and in step throughout: before and after, the book is the venue's
        at :attr:`last_id` inside its edges; only the edges move out. For a book in step on a shallow first
        snapshot, recording since before ``snapshot`` was asked for.

        None, the book untouched: the snapshot is not :meth:`covered <covers>`, or the recorded diffs do not follow
        it (try again with another). APPLIED: the book is the deeper one from now on. An outcome that breaks a book
        (CROSSED, PAST_SNAPSHOT): the deeper book would be broken, so the book is untouched and must be rebuilt.
        """
        recent = self.recent
        if recent is None or not self.covers(snapshot):
            return None
        book = VenueBook()
        book.load(snapshot.bids, snapshot.asks, *edges(snapshot, limit))
        last_id = snapshot.last_id
        for diff in recent:
            if diff.final_id <= snapshot.last_id:
                continue
            if self._continuity(diff, last_id, snapshot.last_id) is not Outcome.APPLIED:
                return None
            book.apply(diff.bids, diff.asks)
            last_id = diff.final_id
        if last_id != self.last_id:
            return None
        outcome = self._check(book)
        if outcome is Outcome.APPLIED:
            self.book.replace(book)  # in place: the consolidated book serves this object
        return outcome

    def start_recording(self) -> None:
        """Keep every diff applied from now on in :attr:`recent` (a drift audit is starting)."""
        self.recent = deque(maxlen=RECENT_DIFFS)
        self._recorded_after = self.last_id

    def stop_recording(self) -> None:
        self.recent = None

    def recorded_since(self) -> int | None:
        """Every diff applied with an id above this is in :attr:`recent` (None: not in step, or not recording)."""
        recent = self.recent
        if not self.in_step or recent is None:
            return None
        if len(recent) < RECENT_DIFFS:
            return self._recorded_after  # nothing applied since recording began has been forgotten
        # The forgotten diffs all end before the oldest one kept begins.
        return recent[0].first_id - 1

    def _check_book(self) -> Outcome:
        """What a book that follows the stream must still be: uncrossed, and deep enough to serve in full."""
        return self._check(self.book)

    def _check(self, book: VenueBook) -> Outcome:
        if book.is_crossed():
            return Outcome.CROSSED
        depth = self._watch_depth
        if (book.bid_floor is not None and book.bid_depth < depth) or (
            book.ask_ceiling is not None and book.ask_depth < depth
        ):
            return Outcome.PAST_SNAPSHOT
        return Outcome.APPLIED

    @abstractmethod
    def _continuity(self, diff: BookDiff, last_id: int, snapshot_id: int) -> Outcome:
        """Whether a live diff follows the book (``last_id``: the last diff applied, or the snapshot's id if none
        was; ``snapshot_id``: the snapshot's): APPLIED, STALE, or an outcome that breaks the book."""

    @abstractmethod
    def _snapshot_too_old(self, snapshot: BookSnapshot, first: BookDiff, first_pending: BookDiff | None) -> bool:
        """Whether the snapshot leaves a hole before the buffered diffs: ``first`` is the first buffered,
        ``first_pending`` the first the snapshot does not reflect (None: it reflects them all)."""
