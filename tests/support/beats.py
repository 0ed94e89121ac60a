"""Whether several symbols' frames come on one common beat: the measure the recordings and the simulator share."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence

NEIGHBOURS_MS = 50
"""Two frames of different symbols this close are neighbours: within one 100-ms beat of each other, were there one."""
SAME_MS = 1


def same_time_share(times: Mapping[str, Sequence[int]]) -> tuple[int, float]:
    """``times``: each symbol's frames' event times (ms). Returns (how many frames have a frame of another symbol
    within NEIGHBOURS_MS, the share of those whose nearest such frame has the same event time within SAME_MS): 1.0
    when the symbols send on one beat, a few percent when each sends on its own."""
    near = same = 0
    for symbol, own in times.items():
        others = sorted(ms for other, values in times.items() if other != symbol for ms in values)
        for ms in own:
            close = others[bisect_left(others, ms - NEIGHBOURS_MS):bisect_right(others, ms + NEIGHBOURS_MS)]
            if close:
                near += 1
                same += min(abs(other - ms) for other in close) <= SAME_MS
    return near, same / near if near else 0.0
