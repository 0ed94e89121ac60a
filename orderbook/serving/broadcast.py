"""Latest-value fan-out of serialized summaries to any number of streams.

Clients want the current book, not its history: a reader that falls behind skips to the newest summary instead
of queueing the ones it missed, so memory stays bounded (one payload, whatever the number or speed of readers)
and a slow client cannot delay anyone else. Publishing stores the payload, bumps a version and sets the event of
every stream parked waiting for it. Each stream sleeps on an event of its own (:meth:`SummaryBroadcaster.waker`),
so a call that ends wakes only its own stream, not all of them: with 500 idle streams, 100 cancels a second cost
40% of a core when every cancel woke every stream. All of this runs on one gevent hub (greenlets, not threads).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator

from gevent.event import Event

from orderbook.metrics import LatencyHistogram
from orderbook.serving.stats import ServingStats

log = logging.getLogger(__name__)


class SummaryBroadcaster:
    """Holds the latest payload and hands it to every stream; see the module docstring for the semantics."""

    def __init__(self, recheck_interval: float = 1.0) -> None:
        """``recheck_interval`` bounds how long a stream sleeps before re-checking that its client is still there."""
        self._recheck_interval = recheck_interval
        self.send_latency = LatencyHistogram()
        """For each payload handed to a stream, the seconds since it was published."""
        self._version = 0
        self._latest: bytes | None = None
        self._published_at = 0.0
        self._parked: dict[Event, None] = {}  # the events of the streams waiting for a newer payload, in order
        self._closed = False
        self._open_streams = 0
        self._sent_total = 0
        self._skipped_total = 0

    @property
    def latest(self) -> bytes | None:
        return self._latest

    @property
    def version(self) -> int:
        """How many payloads have been published; a stream compares it with the last version it sent."""
        return self._version

    @property
    def published_at(self) -> float:
        """``time.perf_counter()`` when the latest payload was published."""
        return self._published_at

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def open_streams(self) -> int:
        return self._open_streams

    @property
    def published_total(self) -> int:
        return self._version

    @property
    def sent_total(self) -> int:
        """Payloads handed to streams (each stream counts separately)."""
        return self._sent_total

    @property
    def skipped_total(self) -> int:
        """Payloads a stream never sent because a newer one was published before it was ready for more."""
        return self._skipped_total

    def stats(self) -> ServingStats:
        """The stream figures (``active_calls`` is the gRPC server's to fill in)."""
        return ServingStats(self._open_streams, self._sent_total, self._skipped_total, 0, self.send_latency)

    def publish(self, payload: bytes, published_at: float | None = None) -> None:
        """Make ``payload`` the current summary and wake every waiting stream. ``published_at`` (a
        ``time.perf_counter()`` value, the same clock in every process on Linux) is when the book published it,
        if that was in another process; the default is now."""
        if self._closed:
            log.debug("publish after close ignored")
            return
        self._latest = payload
        self._published_at = time.perf_counter() if published_at is None else published_at
        self._version += 1
        self._wake()

    def wake(self) -> None:
        """Make every waiting stream re-check its client now. A call that ends should set its own stream's
        :meth:`waker` instead, which wakes that stream alone."""
        self._wake()

    @staticmethod
    def waker() -> Event:
        """An event for one stream to sleep on: give it to :meth:`stream` (or :meth:`follow`) and set it to make
        that stream, and no other, re-check its client now (e.g. from the call's end-of-call callback)."""
        return Event()

    def close(self) -> None:
        """End every stream (they return at their next check, which this triggers at once)."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        parked, self._parked = self._parked, {}
        for event in parked:
            event.set()

    def follow(self, is_active: Callable[[], bool], wake_up: Event | None = None) -> Iterator[tuple[int, bytes]]:
        """Yield ``(version, payload)`` for the current payload at once if there is one, then for each newer one,
        until closed or inactive; skipped versions show as gaps. Not counted as a client stream. Between payloads
        it sleeps on ``wake_up`` (see :meth:`waker`; a new one if not given)."""
        own = wake_up if wake_up is not None else Event()
        sent_version = 0
        try:
            while True:
                own.clear()  # before the checks: a wake-up from here on ends the wait below at once
                self._parked[own] = None
                if self._closed or not is_active():
                    return
                version, payload = self._version, self._latest
                if payload is None or version == sent_version:
                    own.wait(self._recheck_interval)
                    continue
                sent_version = version
                yield version, payload
        finally:
            self._parked.pop(own, None)

    def stream(self, is_active: Callable[[], bool], wake_up: Event | None = None) -> Generator[bytes, None, None]:
        """A client's stream: :meth:`follow`, counted and timed."""
        self._open_streams += 1
        observe = self.send_latency.observe
        try:
            sent_version = 0
            for version, payload in self.follow(is_active, wake_up):
                if sent_version:
                    self._skipped_total += version - sent_version - 1
                sent_version = version
                self._sent_total += 1
                observe(time.perf_counter() - self._published_at)
                yield payload
        finally:
            self._open_streams -= 1
