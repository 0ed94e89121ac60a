"""A send budget for one serving process: at most so many summaries a second across all its streams.

Each send through grpcio's sync server under gevent costs a completion-queue round trip through the hub's
native thread pool, and one process completes about 7,500 a second (RUNTIME-NOTES.md). Past that the completion
queue is always full, and a new call's own completion waits behind every stream's send: with 1,000 streams at
50 summaries a second, new clients waited many seconds for their first summary. Pacing the sends below the
ceiling keeps that queue short. Streams that must wait are not queued summaries: they send whatever is newest
when their turn comes (conflation), in the order they asked (a FIFO lock), so every stream keeps receiving.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
from gevent.lock import Semaphore

BURST_SECONDS = 0.05
"""Sends allowed at once: this many seconds of the budget, so one publish reaches every stream of a process in a
single burst when the process is within its budget."""


class SendPacer:
    """A token bucket shared by the streams of one process; :meth:`take` blocks until a send is allowed."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = gevent.sleep) -> None:
        if per_second <= 0:
            raise ValueError(f"per_second must be positive, not {per_second}")
        self.per_second = per_second
        self._burst = max(1.0, per_second * BURST_SECONDS)
        self._tokens = self._burst
        self._clock = clock
        self._sleep = sleep
        self._at = clock()
        self._turn = Semaphore(1)  # waiters are served in arrival order
        self.waited_total = 0
        """Sends that had to wait for the budget: non-zero means the process was at its ceiling."""

    def take(self) -> None:
        with self._turn:
            self._refill()
            if self._tokens < 1:
                self.waited_total += 1
                self._sleep((1 - self._tokens) / self.per_second)
                self._refill()
            self._tokens -= 1

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now
