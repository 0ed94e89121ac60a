"""ReadyFirstPolls: a ready completion event is taken on the greenlet, an empty queue still parks in the pool.

The poll function and the thread pool are fakes here; test_grpc_server.py checks, in a real serving process,
that grpcio's own polls take the fast path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gevent
from grpc._cython import cygrpc

from orderbook.gevent_polling import YIELD_EVERY, ReadyFirstPolls

READY = cygrpc.CompletionType.operation_complete
TIMEOUT = cygrpc.CompletionType.queue_timeout


@dataclass
class Event:
    completion_type: Any


@dataclass
class FakeQueue:
    """Events waiting in the queue; a poll with a passed deadline takes one or times out."""

    waiting: list[Event] = field(default_factory=list)
    deadlines: list[float | None] = field(default_factory=list)

    def poll(self, deadline: float | None) -> Event:
        self.deadlines.append(deadline)
        return self.waiting.pop(0) if self.waiting else Event(TIMEOUT)


def internal_poll(queue: FakeQueue, deadline: float | None) -> Event:
    return queue.poll(deadline)


@dataclass
class FakeThreadPool:
    applied: list[tuple[Any, tuple[Any, ...], Any]] = field(default_factory=list)
    maxsize: int = 10

    def apply(self, func: Any, args: tuple[Any, ...] = (), kwds: Any = None) -> Any:
        self.applied.append((func, args, kwds))
        return ("from the pool", func, args)


def polls() -> tuple[ReadyFirstPolls, FakeThreadPool]:
    pool = FakeThreadPool()
    return ReadyFirstPolls(pool, internal_poll), pool


def test_a_ready_event_is_returned_without_the_thread_pool() -> None:
    ready_first, pool = polls()
    event = Event(READY)
    queue = FakeQueue([event])
    assert ready_first.apply(internal_poll, (queue, 1234.5)) is event
    assert pool.applied == []
    assert queue.deadlines == [0.0]  # asked without waiting
    assert (ready_first.ready, ready_first.parked) == (1, 0)


def test_an_empty_queue_parks_in_the_thread_pool_with_the_callers_deadline() -> None:
    ready_first, pool = polls()
    queue = FakeQueue()
    assert ready_first.apply(internal_poll, (queue, 1234.5)) == ("from the pool", internal_poll, (queue, 1234.5))
    assert pool.applied == [(internal_poll, (queue, 1234.5), None)]
    assert (ready_first.ready, ready_first.parked) == (0, 1)


def test_other_work_goes_to_the_thread_pool_untouched() -> None:
    ready_first, pool = polls()

    def channel_poll(argument: object) -> None:
        raise AssertionError("must run in the pool, not here")

    assert ready_first.apply(channel_poll, ("latent",)) == ("from the pool", channel_poll, ("latent",))
    assert pool.applied == [(channel_poll, ("latent",), None)]
    assert ready_first.maxsize == 10  # everything else is the pool's
    assert (ready_first.ready, ready_first.parked) == (0, 0)


def test_a_run_of_ready_events_yields_to_other_greenlets_once_every_yield_every() -> None:
    ready_first, _ = polls()
    queue = FakeQueue([Event(READY) for _ in range(2 * YIELD_EVERY)])
    ran_at: list[int] = []

    def woken_stream() -> None:
        ran_at.append(ready_first.ready)

    gevent.spawn(woken_stream)
    for _ in range(YIELD_EVERY - 1):
        ready_first.apply(internal_poll, (queue, None))
    assert ran_at == []  # still draining
    ready_first.apply(internal_poll, (queue, None))
    assert ran_at == [YIELD_EVERY]
    gevent.spawn(woken_stream)
    for _ in range(YIELD_EVERY):
        ready_first.apply(internal_poll, (queue, None))
    assert ran_at == [YIELD_EVERY, 2 * YIELD_EVERY]


def test_a_parked_poll_ends_the_run() -> None:
    ready_first, _ = polls()
    queue = FakeQueue([Event(READY) for _ in range(YIELD_EVERY - 1)])
    for _ in range(YIELD_EVERY - 1):
        ready_first.apply(internal_poll, (queue, None))
    ready_first.apply(internal_poll, (queue, None))  # empty: parks, the run starts again
    queue.waiting.append(Event(READY))
    ran: list[bool] = []
    gevent.spawn(ran.append, True)
    ready_first.apply(internal_poll, (queue, None))
    assert ran == []
