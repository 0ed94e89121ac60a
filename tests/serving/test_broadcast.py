from __future__ import annotations

import time
from collections.abc import Callable

import gevent
import pytest

from orderbook.serving.broadcast import SummaryBroadcaster


class Activity:
    """A client that is there until ``leave()``."""

    def __init__(self) -> None:
        self.active = True

    def __call__(self) -> bool:
        return self.active

    def leave(self) -> None:
        self.active = False


def always() -> bool:
    return True


def test_new_subscriber_gets_the_current_summary_at_once() -> None:
    broadcaster = SummaryBroadcaster()
    broadcaster.publish(b"one")
    broadcaster.publish(b"two")
    stream = broadcaster.stream(always)
    with gevent.Timeout(0.1):  # no waiting: the current summary is there
        assert next(stream) == b"two"
    assert broadcaster.sent_total == 1
    assert broadcaster.skipped_total == 0  # summaries from before a stream opened are not skipped by it


def test_stream_waits_for_the_first_summary() -> None:
    broadcaster = SummaryBroadcaster()
    reader = gevent.spawn(next, broadcaster.stream(always))
    gevent.sleep(0.05)
    assert not reader.ready()
    broadcaster.publish(b"first")
    assert reader.get(timeout=1) == b"first"


def test_a_reader_that_keeps_up_sees_every_summary() -> None:
    broadcaster = SummaryBroadcaster()
    stream = broadcaster.stream(always)
    seen = []
    for payload in (b"a", b"b", b"c"):
        broadcaster.publish(payload)
        seen.append(next(stream))
    assert seen == [b"a", b"b", b"c"]
    assert (broadcaster.published_total, broadcaster.sent_total, broadcaster.skipped_total) == (3, 3, 0)


def test_a_slow_reader_skips_to_the_latest_and_the_skips_are_counted() -> None:
    broadcaster = SummaryBroadcaster()
    broadcaster.publish(b"v1")
    slow = broadcaster.stream(always)
    fast = broadcaster.stream(always)
    assert next(slow) == b"v1"
    assert next(fast) == b"v1"
    for number in range(2, 6):
        broadcaster.publish(b"v%d" % number)
        assert next(fast) == b"v%d" % number
    assert next(slow) == b"v5"
    assert broadcaster.skipped_total == 3  # v2, v3, v4 never reached the slow reader
    assert broadcaster.sent_total == 2 + 4 + 1
    assert broadcaster.latest == b"v5" and broadcaster.version == 5


def streams_open(broadcaster: SummaryBroadcaster, count: int, timeout: float = 5.0) -> None:
    """Until ``count`` streams wait. Spawned greenlets start within a hub pass or a few: gevent stops running
    callbacks after a few milliseconds to look at timers, which a loaded machine reaches with some still unstarted."""
    deadline = time.monotonic() + timeout
    while broadcaster.open_streams < count:
        assert time.monotonic() < deadline, f"{broadcaster.open_streams} of {count} streams opened"
        gevent.sleep(0.001)
    assert broadcaster.open_streams == count


def test_every_waiting_stream_wakes_on_publish() -> None:
    broadcaster = SummaryBroadcaster(recheck_interval=10)
    readers = [gevent.spawn(next, broadcaster.stream(always)) for _ in range(100)]
    streams_open(broadcaster, 100)
    broadcaster.publish(b"x")
    assert [reader.get(timeout=1) for reader in readers] == [b"x"] * 100


def test_close_ends_every_stream_and_later_publishes_are_ignored() -> None:
    broadcaster = SummaryBroadcaster(recheck_interval=10)
    broadcaster.publish(b"only")
    readers = [gevent.spawn(list, broadcaster.stream(always)) for _ in range(3)]
    streams_open(broadcaster, 3)
    broadcaster.close()
    assert [reader.get(timeout=1) for reader in readers] == [[b"only"]] * 3
    assert broadcaster.open_streams == 0
    broadcaster.publish(b"late")
    assert broadcaster.latest == b"only" and broadcaster.closed
    assert list(broadcaster.stream(always)) == []


def test_stream_ends_when_its_client_leaves() -> None:
    broadcaster = SummaryBroadcaster(recheck_interval=0.05)
    client = Activity()
    reader = gevent.spawn(list, broadcaster.stream(client))
    gevent.sleep(0.01)
    client.leave()
    assert reader.get(timeout=1) == []  # noticed at the timed re-check
    assert broadcaster.open_streams == 0


def test_wake_makes_a_departed_client_noticed_at_once() -> None:
    broadcaster = SummaryBroadcaster(recheck_interval=60)
    client = Activity()
    other = gevent.spawn(next, broadcaster.stream(always))
    reader = gevent.spawn(list, broadcaster.stream(client))
    streams_open(broadcaster, 2)
    client.leave()
    broadcaster.wake()
    assert reader.get(timeout=0.5) == []
    assert not other.ready()  # a wake-up is not a summary
    broadcaster.publish(b"p")
    assert other.get(timeout=1) == b"p"


def test_open_streams_counts_generators_until_they_are_closed() -> None:
    broadcaster = SummaryBroadcaster()
    broadcaster.publish(b"p")
    streams = [broadcaster.stream(always) for _ in range(4)]
    assert broadcaster.open_streams == 0  # a generator starts when first iterated
    for stream in streams:
        next(stream)
    assert broadcaster.open_streams == 4
    streams[0].close()
    assert broadcaster.open_streams == 3
    del streams[1]  # dropped by its consumer, as grpc does with a finished RPC's iterator
    assert broadcaster.open_streams == 2


@pytest.mark.parametrize("readers", [0, 1000])
def test_publish_holds_only_the_latest_payload(readers: int) -> None:
    broadcaster = SummaryBroadcaster(recheck_interval=10)
    waiting = [gevent.spawn(next, broadcaster.stream(always)) for _ in range(readers)]
    gevent.sleep(0)
    for number in range(1000):
        broadcaster.publish(b"%d" % number)
    assert broadcaster.latest == b"999" and broadcaster.version == 1000
    assert {reader.get(timeout=2) for reader in waiting} <= {b"999"}


def test_send_latency_counts_the_time_from_publish_to_each_stream() -> None:
    broadcaster = SummaryBroadcaster()
    first, second = broadcaster.stream(always), broadcaster.stream(always)
    broadcaster.publish(b"one")
    gevent.sleep(0.02)
    assert next(first) == b"one"
    assert next(second) == b"one"
    latency = broadcaster.send_latency
    assert sum(latency.counts) == 2
    assert 0.04 <= latency.total < 2.0
    assert sum(latency.counts[latency.bounds.index(0.01) + 1:]) == 2  # both above 10 ms


def test_a_publish_time_from_another_process_is_kept() -> None:
    broadcaster = SummaryBroadcaster()
    stream = broadcaster.stream(always)
    broadcaster.publish(b"one", published_at=time.perf_counter() - 0.3)
    assert next(stream) == b"one"
    assert 0.3 <= broadcaster.send_latency.total < 1.0


def test_a_streams_own_wake_up_wakes_it_alone() -> None:
    # A call that ends sets its own stream's waker: the other waiting streams sleep on.
    broadcaster = SummaryBroadcaster(recheck_interval=60)
    checks = [0] * 50
    leaving = Activity()

    def counted(index: int) -> Callable[[], bool]:
        def is_active() -> bool:
            checks[index] += 1
            return leaving() if index == 0 else True
        return is_active

    wakers = [broadcaster.waker() for _ in range(50)]
    readers = [gevent.spawn(list, broadcaster.stream(counted(i), wakers[i])) for i in range(50)]
    streams_open(broadcaster, 50)
    gevent.sleep(0.01)  # each has checked its client once and waits
    before = list(checks)
    leaving.leave()
    wakers[0].set()
    assert readers[0].get(timeout=0.5) == []
    gevent.sleep(0.01)
    assert checks[0] == before[0] + 1
    assert checks[1:] == before[1:]  # nobody else re-checked its client
    assert broadcaster.open_streams == 49
    broadcaster.publish(b"p")  # and the others still get every summary
    gevent.sleep(0.01)
    broadcaster.close()
    assert [reader.get(timeout=1) for reader in readers[1:]] == [[b"p"]] * 49
