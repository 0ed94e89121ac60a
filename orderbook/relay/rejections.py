"""Values read from Redis that were refused: counted by reason, logged at most a line a reason a while, ignored.

What another process left in Redis (a lease, the epoch counter, an envelope) is input: one that breaks a rule is
counted in ``orderbook_relay_rejected_total{reason}`` so that an alert can fire, logged so that someone can see what
it was, and never raised out of the loop that read it.
"""

from __future__ import annotations

import logging
from collections import Counter

from orderbook.logs import LogThrottle

LOG_INTERVAL = 10.0
"""Seconds between two log lines about values refused for the same reason (each says how many went unlogged)."""


class Rejections:
    """One loop's refusals: a book node's election, or an edge's source."""

    def __init__(self, counts: Counter[str], logger: logging.Logger) -> None:
        """``counts``: the figures' counter by reason (:mod:`orderbook.relay.metrics`)."""
        self._counts = counts
        self._log = logger
        self._throttle = LogThrottle(LOG_INTERVAL)
        self._last: dict[str, int] = {}
        """Each reason's last value refused, as its hash: one a reason, however large the value."""

    def reject(self, reason: str, message: str, *args: object, value: bytes | None = None) -> None:
        """Count one refusal for ``reason`` and log ``message % args`` unless one was logged lately. ``value``: what
        was refused, when the same stored value is read again and again (the lease, at every tick): it is counted
        once, not at each read."""
        if value is not None:
            if self._last.get(reason) == hash(value):
                return
            self._last[reason] = hash(value)
        self._counts[reason] += 1
        suppressed = self._throttle.allow(reason)
        if suppressed is not None:
            self._log.warning(message + "%s", *args, f" [{suppressed} more like it not logged]" if suppressed else "")

    def settled(self, reason: str) -> None:
        """The value read for ``reason`` is good again: a bad one read next is counted, even one seen before."""
        self._last.pop(reason, None)
