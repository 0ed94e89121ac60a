from __future__ import annotations

import time

import gevent
import pytest

from orderbook.serving.executor import GreenletExecutor


def test_results_and_exceptions_reach_the_futures() -> None:
    executor = GreenletExecutor()
    good = executor.submit(lambda a, b=0: a + b, 2, b=3)
    bad = executor.submit(lambda: 1 / 0)
    executor.shutdown(wait=True)
    assert good.result(timeout=0) == 5
    assert isinstance(bad.exception(timeout=0), ZeroDivisionError)


def test_each_call_runs_in_its_own_greenlet_so_none_waits_for_another() -> None:
    executor = GreenletExecutor()
    started = time.monotonic()

    def hold() -> object:
        gevent.sleep(0.2)  # a long-lived call, like a streaming RPC
        return gevent.getcurrent()

    futures = [executor.submit(hold) for _ in range(200)]
    gevent.sleep(0.01)
    assert executor.running == 200
    executor.shutdown(wait=True)
    assert time.monotonic() - started < 1.5  # 200 x 0.2 s in sequence would be 40 s
    assert len({future.result(timeout=0) for future in futures}) == 200
    assert executor.running == 0


def test_shutdown_waits_for_running_calls_and_refuses_new_ones() -> None:
    executor = GreenletExecutor()
    done = []

    def sleep_then_finish() -> None:
        gevent.sleep(0.05)
        done.append(True)

    executor.submit(sleep_then_finish)
    executor.shutdown(wait=True)
    assert done == [True]
    with pytest.raises(RuntimeError):
        executor.submit(print)


def test_shutdown_can_cancel_calls_not_yet_started() -> None:
    executor = GreenletExecutor()
    ran: list[int] = []
    future = executor.submit(ran.append, 1)
    executor.shutdown(wait=False, cancel_futures=True)
    gevent.sleep(0.01)
    assert future.cancelled()
    assert ran == []
