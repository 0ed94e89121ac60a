"""Binance's REST request-weight budget: a fixed one-minute window per IP, as ``X-MBX-USED-WEIGHT-1M`` reports.

Pure (the caller passes the clock), so the arithmetic is unit-tested without sockets or sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

WINDOW_SECONDS = 60.0


def depth_weight(limit: int) -> int:
    """Request weight of ``GET /api/v3/depth`` for an (already clamped) limit, per the documented bands."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    used: int
    """Weight used in the current window, including this request when it was allowed."""
    retry_after: int
    """Whole seconds until the window resets (only meaningful when not allowed)."""


class WeightLimiter:
    def __init__(self, limit_per_minute: int) -> None:
        self.limit = limit_per_minute
        self._windows: dict[str, tuple[int, int]] = {}  # ip -> (window index, used weight)

    def admit(self, ip: str, weight: int, now: float) -> Admission:
        """Charge ``weight`` to ``ip`` unless that would exceed the budget; a refused request is not charged."""
        window = int(now // WINDOW_SECONDS)
        current, used = self._windows.get(ip, (window, 0))
        if current != window:
            used = 0
        if used + weight > self.limit:
            self._windows[ip] = (window, used)
            retry_after = max(1, ceil((window + 1) * WINDOW_SECONDS - now))
            return Admission(False, used, retry_after)
        used += weight
        self._windows[ip] = (window, used)
        return Admission(True, used, 0)
