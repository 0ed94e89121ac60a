"""Latency probes: now and then a model event sets a venue's best bid to a unique marker amount, and its send time
is kept, so a benchmark can time the whole path (simulator -> server -> gRPC client) black-box.

A marker amount is ``MARKER_BASE + key`` lots with ``key`` counting up from 1 across both venues: far above any
amount the model draws (at most ~50), so a client reading a summary knows a marker when it sees one
(:func:`marker_key`) and which probe it was. The probe's event is published (framed and queued to every
subscriber) as the last event of its batch; its send time is ``time.monotonic()`` just before the first write that
carries its frame to a socket, so that the simulator's own turn-taking between the two (a deep snapshot rendered
for another symbol's REST request, the next tick of hundreds of markets) is not counted as the service's latency,
as a real venue's REST servers do not hold up its streams. The time it was queued is kept beside it
(:meth:`ProbeLog.sent`). CLOCK_MONOTONIC is system-wide on Linux, so a client process can subtract the send time
from its own ``time.monotonic()`` at receipt. Probes are off unless ``every`` is set
(``--probe-every`` or ``POST /probe``); replayed recordings never carry probes.
"""

from __future__ import annotations

from collections import deque

from orderbook.prices import SCALE
from orderbook.simulator.market import LOT

MARKER_BASE_LOTS = 1000 * (SCALE // LOT)
"""1000.00000000 in lots: markers are 1000 + key * 0.00000001."""
MAX_KEY = 10**9
"""Keys stay below this, so a marker reads back exactly from a double (1000 + 1e9 * 1e-8 = 1010)."""
KEEP = 200_000
"""Send records kept for the control API (the oldest go first)."""


class ProbeError(ValueError):
    """A probe setting that cannot work."""


def marker_key(amount: float) -> int | None:
    """The probe key behind an amount a client received (a float), or None for an ordinary amount."""
    if not 1000.0 <= amount < 1000.0 + MAX_KEY / 1e8:
        return None
    return round((amount - 1000.0) * 1e8)


class ProbeLog:
    """Which events are probes, and when each was sent. Shared by both venues' feeds."""

    def __init__(self, every: int = 0) -> None:
        self.every = 0
        self.set_every(every)
        self._next_key = 1
        self._sent: deque[list] = deque(maxlen=KEEP)
        """[key, exchange, queued at, written at (None until it is)]."""
        self._by_key: dict[int, list] = {}
        """The records not written yet, by key (the oldest dropped past :data:`KEEP`)."""

    def set_every(self, every: int) -> None:
        """Make every ``every``-th event of each venue a probe; 0 turns probes off."""
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ProbeError(f"every must be an integer >= 0, got {every!r}")
        self.every = every

    def new_marker(self) -> tuple[int, int]:
        """The next probe's (key, marker amount in lots)."""
        key = self._next_key
        if key >= MAX_KEY:  # a billion probes: years at benchmark rates
            raise ProbeError("probe keys exhausted")
        self._next_key = key + 1
        return key, MARKER_BASE_LOTS + key

    def record(self, key: int, exchange: str, queued_at: float) -> None:
        """A probe's event, queued to its subscribers at ``queued_at``."""
        self._sent.append([key, exchange, queued_at, None])
        waiting = self._by_key
        waiting[key] = self._sent[-1]
        if len(waiting) > KEEP:  # never written (no subscriber): forgotten with the oldest records
            del waiting[next(iter(waiting))]

    def written(self, key: int, at: float) -> None:
        """A frame carrying probe ``key`` was handed to a socket at ``at``: the first one is its send time."""
        record = self._by_key.pop(key, None)
        if record is not None:
            record[3] = at

    def sent(self, since: int = 0) -> list[tuple[int, str, float, float]]:
        """(key, exchange, send time, queued time) of the probes with a key above ``since``, oldest first. The send
        time is when its frame was first handed to a socket; the queued time when its event was queued (the
        simulator's own turn-taking lies between the two); a probe not written yet (or sent on no connection)
        has its queued time as its send time."""
        return [(key, exchange, queued if written is None else written, queued)
                for key, exchange, queued, written in self._sent if key > since]
