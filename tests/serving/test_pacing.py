"""SendPacer (the per-process send budget) on a fake clock, and the broadcaster's streams paced by it."""

from __future__ import annotations

from collections.abc import Callable

import gevent
import pytest

from orderbook.serving.broadcast import SummaryBroadcaster
from orderbook.serving.pacing import BURST_SECONDS, SendPacer


class FakeTime:
    """A clock that moves only when told to or when someone sleeps on it; every sleep is recorded.

    Sleeping yields to the other greenlets (as the real ``gevent.sleep`` does), and runs ``during_sleep`` first
    if set, so a test can publish while a stream waits for its budget."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.during_sleep: Callable[[], None] | None = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.during_sleep is not None:
            self.during_sleep()
        gevent.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pacer(per_second: float, time: FakeTime) -> SendPacer:
    return SendPacer(per_second, clock=time.clock, sleep=time.sleep)


def always() -> bool:
    return True


# -- the token bucket ---------------------------------------------------------------------------------------


def test_many_takes_in_a_row_go_at_the_rate_after_the_burst() -> None:
    time = FakeTime()
    paced = pacer(100, time)  # a burst of 5
    start = time.now
    for _ in range(1005):
        paced.take()
    assert len(time.sleeps) == paced.waited_total == 1000
    assert time.sleeps == pytest.approx([0.01] * 1000)
    assert time.now - start == pytest.approx(10.0)


def test_no_schedule_of_takes_beats_burst_plus_rate_times_elapsed() -> None:
    time = FakeTime()
    paced = pacer(200, time)
    burst = 200 * BURST_SECONDS
    start = time.now
    for number in range(1, 3001):
        time.advance((number % 7) * 0.0007)  # asks come irregularly, on average faster than the budget
        paced.take()
        assert number <= burst + 200 * (time.now - start) + 1e-6
    assert 3000 / (time.now - start) == pytest.approx(200, rel=0.01)  # and the budget was used, not wasted
    assert 0 < paced.waited_total < 3000


def test_the_burst_is_available_at_once_and_refills_up_to_its_size_only() -> None:
    time = FakeTime()
    paced = pacer(1000, time)  # a burst of 50
    for _ in range(50):
        paced.take()
    assert time.sleeps == [] and paced.waited_total == 0
    paced.take()
    assert time.sleeps == [pytest.approx(0.001)] and paced.waited_total == 1

    time.advance(60)  # idle for a minute: the bucket holds one burst, not a minute's worth
    for _ in range(50):
        paced.take()
    assert paced.waited_total == 1
    paced.take()
    assert paced.waited_total == 2


def test_a_partly_refilled_bucket_waits_only_for_the_missing_fraction() -> None:
    time = FakeTime()
    paced = pacer(1000, time)
    for _ in range(50):
        paced.take()
    time.advance(0.0105)  # 10.5 tokens
    for _ in range(10):
        paced.take()
    assert time.sleeps == []
    paced.take()
    assert time.sleeps == [pytest.approx(0.0005)]


def test_a_low_rate_still_allows_one_send_at_once() -> None:
    time = FakeTime()
    paced = pacer(4, time)  # 4 * BURST_SECONDS is below one send
    paced.take()
    assert time.sleeps == []
    paced.take()
    paced.take()
    assert time.sleeps == pytest.approx([0.25, 0.25])
    assert paced.waited_total == 2


@pytest.mark.parametrize("rate", [0, -1])
def test_a_rate_that_is_not_positive_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        SendPacer(rate)


def test_waiters_are_served_in_the_order_they_asked() -> None:
    time = FakeTime()
    paced = pacer(10, time)  # a burst of 1: every take after the first waits
    served: list[int] = []

    def take(number: int) -> None:
        paced.take()
        served.append(number)

    takers = [gevent.spawn(take, number) for number in range(20)]
    gevent.joinall(takers, timeout=5, raise_error=True)
    assert served == list(range(20))
    assert paced.waited_total == 19
    assert time.sleeps == pytest.approx([0.1] * 19)  # one at a time: nobody waited for a budget already spent


# -- streams paced by it -------------------------------------------------------------------------------------


def exhausted(time: FakeTime, per_second: float = 100) -> SendPacer:
    """A pacer whose burst is spent (the clock does not move until someone sleeps)."""
    paced = pacer(per_second, time)
    while paced.waited_total == 0:
        paced.take()
    time.sleeps.clear()
    return paced


def test_a_streams_first_summary_does_not_wait_for_the_budget() -> None:
    time = FakeTime()
    paced = exhausted(time)
    waited = paced.waited_total
    broadcaster = SummaryBroadcaster(pacer=paced)
    broadcaster.publish(b"v1")
    streams = [broadcaster.stream(always) for _ in range(3)]
    assert [next(stream) for stream in streams] == [b"v1"] * 3
    assert time.sleeps == [] and paced.waited_total == waited
    broadcaster.publish(b"v2")
    assert next(streams[0]) == b"v2"  # the next ones do
    assert paced.waited_total == waited + 1 and len(time.sleeps) == 1


def test_a_stream_that_waited_sends_the_newest_payload_and_never_one_version_twice() -> None:
    time = FakeTime()
    paced = exhausted(time)
    broadcaster = SummaryBroadcaster(recheck_interval=0.01, pacer=paced)
    broadcaster.publish(b"v1")
    stream = broadcaster.stream(always)
    assert next(stream) == b"v1"

    def two_newer() -> None:
        time.during_sleep = None  # once
        broadcaster.publish(b"v3")
        broadcaster.publish(b"v4")

    time.during_sleep = two_newer
    broadcaster.publish(b"v2")
    assert next(stream) == b"v4"  # v2 woke it; v4 was the newest once the budget allowed
    assert broadcaster.skipped_total == 2  # v2 and v3

    following = gevent.spawn(next, stream)
    gevent.sleep(0.05)  # several re-checks: v4 is still the newest, and was sent already
    assert not following.ready()
    broadcaster.publish(b"v5")
    assert following.get(timeout=1) == b"v5"
    assert (broadcaster.sent_total, broadcaster.skipped_total) == (3, 2)


def test_streams_sharing_a_budget_each_see_increasing_versions_and_the_skips_add_up() -> None:
    time = FakeTime()
    paced = pacer(1000, time)  # a burst of 50 for 20 streams: mostly waiting
    broadcaster = SummaryBroadcaster(recheck_interval=0.01, pacer=paced)
    last = 300
    seen: list[list[int]] = [[] for _ in range(20)]

    def read(into: list[int]) -> None:
        for payload in broadcaster.stream(always):
            into.append(int(payload))
            if into[-1] == last:
                return

    readers = [gevent.spawn(read, into) for into in seen]
    for number in range(1, last + 1):
        broadcaster.publish(b"%d" % number)
        gevent.sleep(0)
    gevent.joinall(readers, timeout=5, raise_error=True)
    assert all(reader.ready() for reader in readers)

    for versions in seen:
        assert versions == sorted(set(versions)), versions  # strictly increasing: nothing sent twice
        assert versions[-1] == last
    skipped = sum(versions[-1] - versions[0] + 1 - len(versions) for versions in seen)
    assert broadcaster.skipped_total == skipped > 0
    assert broadcaster.sent_total == sum(map(len, seen))
    assert paced.waited_total > 0
