"""The one polling loop the tests use to wait for something to become true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar, overload

T = TypeVar("T")


# Typed so that a probe answering ``X | None`` gives X back: the default ``accept`` (bool) never takes None. A probe
# is called with no argument; ``Callable[..., T]`` because mypy cannot type a lambda that binds a loop variable by
# default argument (``lambda edge=edge: ...``) against ``Callable[[], T]``.
@overload
def wait_until(probe: Callable[..., T | None], timeout: float, what: str, *, interval: float = ...,
               sleep: Callable[[float], object] = ...) -> T: ...
@overload
def wait_until(probe: Callable[..., T], timeout: float, what: str, *, accept: Callable[[T], object],
               interval: float = ..., sleep: Callable[[float], object] = ...) -> T: ...
def wait_until(probe: Callable[..., T], timeout: float, what: str, *, accept: Callable[[T], object] = bool,
               interval: float = 0.1, sleep: Callable[[float], object] = time.sleep) -> T:
    """Call ``probe`` until ``accept`` takes its answer (by default: until the answer is truthy) and return that
    answer; after ``timeout`` seconds, fail with ``what`` and the last answer.

    ``probe`` is called at least once, and once more at the deadline, so a slow probe still gets its last look.
    An exception from ``probe`` (say, a process that exited early) ends the wait at once.

    ``sleep`` waits ``interval`` between probes: :func:`time.sleep`, or :func:`gevent.sleep` when what is awaited
    runs in greenlets on the waiting thread's own hub (a server started in the test process without
    monkey-patching), which a blocking sleep would stop.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {value!r})")
        sleep(interval)
