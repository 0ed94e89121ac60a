"""How far behind the venue a connection's books are, and whether that is too far to serve them.

Every diff carries the venue's own time of its event (Binance ``E``, Bitstamp ``microtimestamp``). The moment it is
applied minus that time is the lag of every book on its connection: the frames of one connection are read and
applied in order, so once a diff is applied each book on the connection holds every change the venue made up to
that diff's event (frames still waiting in the kernel's socket buffer are behind it, and count once read).

The two clocks differ by a constant the service cannot know (the host's clock error, the network's delay, a
venue's batching): :class:`ClockOffset` takes it as the lowest raw lag, over the last minute, of *fresh* frames
only: those that arrived after the reader found nothing waiting on its socket (:meth:`Stream.waiting`), so that no
queue stands between the venue and them. A backlog, however slowly it grows and however long it lasts, never
becomes the offset: while frames wait, none is fresh, and the offset stays as it was. A reader that finds its
socket drained for :data:`IDLE_CAUGHT_UP` seconds while behind is caught up whatever the clocks say, and starts
the offset afresh (the host's clock may have been stepped).

A connection more than ``max_lag`` behind is *behind*: its books leave the merged book and the venues in step,
without being rebuilt (their diffs are still applied in order); they come back once it is within half the bound,
or drained. The hysteresis keeps a connection near the bound from flapping.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

OFFSET_WINDOW = 60.0
"""Seconds of fresh samples the clock offset is the minimum of (without fresh samples it stays as it is)."""
FRESH_PROBE_INTERVAL = 0.05
"""How often a reader asks whether bytes wait on its socket (a system call) to find a fresh frame: offset samples
enough for a constant, at a cost that does not grow with the frame rate."""
OFFSET_BUCKETS = 6
IDLE_CAUGHT_UP = 1.0
"""A reader that has had no frame for this long has drained its socket: nothing waits, the books are current."""
BACK_IN_STEP_SHARE = 0.5
"""A connection that was behind comes back once its lag is under this share of the bound."""


class ClockOffset:
    """One venue's clock against ours: the lowest raw lag (our time minus the venue's event time) over the last
    :data:`OFFSET_WINDOW` seconds, kept as the minima of :data:`OFFSET_BUCKETS` spans (constant memory)."""

    __slots__ = ("_span", "_buckets", "_bucket_end", "_current", "offset")

    def __init__(self, window: float = OFFSET_WINDOW, buckets: int = OFFSET_BUCKETS) -> None:
        self._span = window / buckets
        self._buckets: deque[float] = deque(maxlen=buckets - 1)
        self._bucket_end = 0.0
        self._current = float("inf")
        self.offset: float | None = None
        """The constant taken out of every raw lag; None before the first sample."""

    def observe(self, raw_lag: float, now: float) -> None:
        if now >= self._bucket_end:
            buckets = self._buckets
            buckets.append(self._current)
            if self._bucket_end:  # spans with no sample at all still age the ones before them
                for _ in range(min(int((now - self._bucket_end) // self._span), buckets.maxlen or 0)):
                    buckets.append(float("inf"))
            self._current = raw_lag
            self._bucket_end = now + self._span
            self.offset = min(raw_lag, *buckets)
        elif raw_lag < self._current:
            self._current = raw_lag
            assert self.offset is not None  # set by the span's first sample
            self.offset = min(raw_lag, self.offset)

    def restart(self) -> None:
        """Forget every sample (the clocks may have been stepped): the next one is the new offset."""
        self._buckets.clear()
        self._current = float("inf")
        self._bucket_end = 0.0
        self.offset = None


class ConnectionLag:
    """One connection's lag, and whether it is behind. ``on_behind(behind, lag)`` is called on each change."""

    __slots__ = ("_offset", "_max_lag", "_back_under", "_on_behind", "lag", "behind", "last_frame_at")

    def __init__(self, offset: ClockOffset, max_lag: float, on_behind: Callable[[bool, float], None]) -> None:
        self._offset = offset
        self._max_lag = max_lag
        self._back_under = max_lag * BACK_IN_STEP_SHARE
        self._on_behind = on_behind
        self.lag = 0.0
        """Seconds behind the venue, as of the last diff read."""
        self.behind = False
        self.last_frame_at = time.perf_counter()
        """When the reader last had a frame (``time.perf_counter()``, set by the reader): any frame shows it busy."""

    def event(self, event_time: float, now: float, fresh: bool) -> float:
        """A diff stamped ``event_time`` by the venue (seconds since the epoch) is being applied at ``now``
        (``time.time()``); ``fresh``: its frame came after the reader found nothing waiting (see the module
        docstring). Returns the lag it shows."""
        raw = now - event_time
        offset = self._offset
        if fresh or offset.offset is None:
            offset.observe(raw, now)
        learnt = offset.offset
        assert learnt is not None  # set by the sample above, if not before
        self.lag = lag = max(0.0, raw - learnt)
        if lag > self._max_lag:
            if not self.behind:
                self.behind = True
                self._on_behind(True, lag)
        elif self.behind and lag < self._back_under:
            self.behind = False
            self._on_behind(False, lag)
        return lag

    def check_idle(self, now: float) -> None:
        """Called now and then (``now``: ``time.perf_counter()``): a behind reader that has had no frame for
        :data:`IDLE_CAUGHT_UP` has drained its socket, so its books are current; the clock offset starts afresh."""
        if self.behind and now - self.last_frame_at >= IDLE_CAUGHT_UP:
            self._offset.restart()
            self.lag = 0.0
            self.behind = False
            self._on_behind(False, 0.0)
