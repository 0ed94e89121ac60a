"""The lag rule (orderbook/feed/lag.py): a clock offset taken out, the bound with hysteresis, a drained socket
caught up. Pure: times are given, nothing sleeps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orderbook.feed.lag import BACK_IN_STEP_SHARE, IDLE_CAUGHT_UP, OFFSET_WINDOW, ClockOffset, ConnectionLag

BOUND = 2.0
T0 = 1_800_000_000.0


class Rig:
    def __init__(self, bound: float = BOUND) -> None:
        self.changes: list[tuple[bool, float]] = []
        self.clock = ClockOffset()
        self.lag = ConnectionLag(self.clock, bound, lambda behind, lag: self.changes.append((behind, lag)))

    def diff(self, event_time: float, now: float, fresh: bool = True) -> float:
        return self.lag.event(event_time, now, fresh)


def test_a_constant_clock_offset_is_no_lag() -> None:
    for offset in (-30.0, 0.0, 0.05, 3600.0):  # our clock behind, exact, a network's delay, an hour ahead
        rig = Rig()
        for second in range(100):
            assert rig.diff(T0 + second, T0 + second + offset) == 0.0
        assert rig.changes == []


@given(offset=st.floats(-1e4, 1e4), delays=st.lists(st.floats(0, 1.9), min_size=1, max_size=50))
def test_any_clock_offset_leaves_the_queueing_delay(offset: float, delays: list[float]) -> None:
    """With one fresh diff first, each later diff's lag is its own delay, whatever the clocks' offset."""
    rig = Rig()
    rig.diff(T0, T0 + offset)
    for index, delay in enumerate(delays, start=1):
        event = T0 + index
        assert abs(rig.diff(event, event + offset + delay) - delay) < 1e-6


def test_past_the_bound_the_connection_is_behind_once_and_back_under_half_of_it() -> None:
    rig = Rig()
    rig.diff(T0, T0 + 0.1)
    rig.diff(T0 + 1, T0 + 1 + 0.1 + 1.5)
    assert not rig.lag.behind
    rig.diff(T0 + 2, T0 + 2 + 0.1 + 2.5)
    rig.diff(T0 + 3, T0 + 3 + 0.1 + 4.0)  # further behind: still one episode
    assert rig.lag.behind and rig.changes == [(True, 2.5)]
    rig.diff(T0 + 4, T0 + 4 + 0.1 + 1.5)  # under the bound, not under half of it: no flapping
    assert rig.lag.behind
    rig.diff(T0 + 5, T0 + 5 + 0.1 + BOUND * BACK_IN_STEP_SHARE - 0.01)
    assert not rig.lag.behind and rig.changes[-1][0] is False and len(rig.changes) == 2


def test_a_backlog_never_becomes_the_clock_offset() -> None:
    """Frames that waited on the socket are never offset samples: a minute and more of backlog is still lag."""
    rig = Rig()
    rig.diff(T0, T0)
    for second in range(1, int(OFFSET_WINDOW * 3)):
        lag = rig.diff(T0 + second, T0 + second + 5.0, fresh=False)
    assert rig.lag.behind and lag == 5.0


def test_a_backlog_that_grows_slowly_is_found_once_past_the_bound() -> None:
    """100 diffs a second, each waiting 10 ms longer a second than the last: after 300 s they are 3 s late. A
    minimum over a sliding window of every sample would have taken the backlog in and never seen it."""
    rig = Rig(bound=1.0)
    rig.diff(T0, T0)  # fresh: the offset
    found_at = None
    for tick in range(1, 30_000):
        event = T0 + tick / 100
        lag = rig.diff(event, event + 0.01 * tick / 100, fresh=False)
        if rig.lag.behind and found_at is None:
            found_at = tick / 100
    assert found_at is not None and 100.0 <= found_at <= 100.1
    assert lag > 2.9 and rig.changes == [(True, rig.changes[0][1])]


def test_a_fresh_frame_shows_the_clocks_offset_even_while_behind() -> None:
    """A frame that came after the socket was found drained met no queue: its raw lag is the clocks' difference."""
    rig = Rig()
    rig.diff(T0, T0 + 0.2)
    rig.diff(T0 + 1, T0 + 1 + 0.2 + 3.0, fresh=False)
    assert rig.lag.behind
    assert rig.diff(T0 + 2, T0 + 2 + 0.15) == 0.0  # fresh, and a new low: caught up
    assert not rig.lag.behind


def test_a_drained_socket_is_caught_up_and_starts_the_offset_afresh() -> None:
    rig = Rig()
    rig.diff(T0, T0)
    rig.lag.last_frame_at = 100.0
    rig.diff(T0 + 1, T0 + 1 + 10.0)  # the host's clock stepped 10 s ahead, or a backlog
    assert rig.lag.behind
    rig.lag.check_idle(100.0 + IDLE_CAUGHT_UP / 2)
    assert rig.lag.behind  # frames came recently: maybe more are waiting
    rig.lag.check_idle(100.0 + IDLE_CAUGHT_UP)
    assert not rig.lag.behind and rig.changes == [(True, 10.0), (False, 0.0)]
    assert rig.diff(T0 + 2, T0 + 2 + 10.0) == 0.0  # the stepped clock is the new normal
    assert not rig.lag.behind


def test_a_connection_in_step_is_never_called_caught_up() -> None:
    rig = Rig()
    rig.diff(T0, T0)
    rig.lag.check_idle(rig.lag.last_frame_at + 10 * IDLE_CAUGHT_UP)
    assert rig.changes == []


def test_the_offset_is_the_lowest_of_the_last_minute_only() -> None:
    clock = ClockOffset()
    clock.observe(0.5, T0)
    clock.observe(0.1, T0 + 1)
    clock.observe(0.3, T0 + 2)
    assert clock.offset == 0.1
    clock.observe(0.4, T0 + OFFSET_WINDOW + 20)  # the 0.1 of a minute and more ago is forgotten
    assert clock.offset == 0.4
    clock.observe(0.6, T0 + 3 * OFFSET_WINDOW)
    assert clock.offset == 0.6
