"""Every greenlet a process starts, supervised: nothing dies quietly behind a healthy face.

In gevent an exception ends only its own greenlet, and silently unless someone is linked to it: a reader, an
election or a publisher that raised once would leave the process up, its health SERVING, with a part of it dead.
The :class:`Supervisor` is the one place greenlets are started (the model is Erlang/OTP's one-for-one supervisor):

* :meth:`Supervisor.task` starts a long-lived task (a venue's connection, the audit loop, the election, the
  publisher, an edge's source). An unexpected exception is logged once with its traceback, counted
  (``orderbook_task_failures_total{task}``) and the task is started again after a backoff; while it is down a
  ``needed`` task makes :attr:`Supervisor.healthy` false, and health follows. A task that returns has finished.
* :meth:`Supervisor.spawn` starts a helper (a snapshot load, an audit, a timer): its unexpected exception is logged
  and counted the same way, under the function's name, but it is not started again: its owner decides what next.

Failures of both kinds share one restart intensity: more than :data:`MAX_FAILURES` within :data:`FAILURE_WINDOW`
seconds and the supervisor gives up, calling ``on_give_up`` (the process stops with exit code 1, for systemd or
Kubernetes to restart it): a process never limps on with a part of it failing over and over.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import gevent.pool
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from orderbook.backoff import Backoff

log = logging.getLogger(__name__)

MAX_FAILURES = 5
FAILURE_WINDOW = 60.0
"""More than MAX_FAILURES unexpected exceptions within FAILURE_WINDOW seconds end the process (exit code 1)."""
RESTART_BASE = 0.5
RESTART_CAP = 10.0
"""A failed task starts again after a jittered, growing delay (Backoff); a run that lasted a FAILURE_WINDOW resets
it."""


class Supervisor:
    """Starts, watches and restarts a process's greenlets; see the module docstring."""

    def __init__(self, on_give_up: Callable[[str], object], *, max_failures: int = MAX_FAILURES,
                 window: float = FAILURE_WINDOW, restart_base: float = RESTART_BASE,
                 restart_cap: float = RESTART_CAP) -> None:
        """``on_give_up(reason)`` is called once, when failures pass the restart intensity."""
        self._on_give_up = on_give_up
        self._max_failures = max_failures
        self._window = window
        self._restart_base, self._restart_cap = restart_base, restart_cap
        self._group = gevent.pool.Group()
        self._recent: deque[float] = deque()
        self.failures: Counter[str] = Counter()
        """Unexpected exceptions by task (or helper function) name."""
        self._tasks: dict[str, bool] = {}
        """Every task running or waiting to be started again, and whether it is running now (False between a
        failure and its restart)."""
        self._needed: set[str] = set()
        self.gave_up: str | None = None
        self.on_health: Callable[[], None] | None = None
        """Called whenever :attr:`healthy` may have changed (a task went down or came back)."""

    # -- starting ----------------------------------------------------------------------------------------------

    def task(self, name: str, function: Callable[..., Any], *args: Any, needed: bool = True) -> gevent.Greenlet:
        """Run ``function(*args)`` as the long-lived task ``name`` (unique in the process), started again after
        an unexpected exception; ``needed``: health is not SERVING while it is down."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        self._tasks[name] = True
        if needed:
            self._needed.add(name)
        return self._group.spawn(self._keep_running, name, function, args)

    def spawn(self, function: Callable[..., Any], *args: Any) -> gevent.Greenlet:
        """Run a helper ``function(*args)``: an unexpected exception is logged and counted, never restarted.
        The signature of ``gevent.spawn``, so that components take it as their ``spawn``."""
        return self._group.spawn(self._run_helper, function, args)

    # -- what it knows -----------------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """No needed task is down, and the supervisor has not given up."""
        return self.gave_up is None and all(self._tasks[name] for name in self._needed)

    @property
    def down(self) -> list[str]:
        """The tasks waiting to be started again after a failure."""
        return [name for name, running in self._tasks.items() if not running]

    def __len__(self) -> int:
        return len(self._group)

    def kill(self, timeout: float | None = None) -> None:
        self._group.kill(timeout=timeout)

    def families(self) -> Iterable[Metric]:
        failures = CounterMetricFamily(
            "orderbook_task_failures", "Unexpected exceptions that ended a task (restarted) or a helper, by name",
            labels=["task"])
        for name in dict.fromkeys((*self._tasks, *self.failures)):
            failures.add_metric([name], self.failures[name])
        up = GaugeMetricFamily("orderbook_task_up", "1 while a supervised task runs; 0 between a failure and its "
                               "restart", labels=["task"])
        for name, running in self._tasks.items():
            up.add_metric([name], running)
        return [failures, up]

    # -- the supervision ---------------------------------------------------------------------------------------

    def _keep_running(self, name: str, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        backoff = Backoff(self._restart_base, self._restart_cap)
        while True:
            started = time.monotonic()
            try:
                function(*args)
                self._tasks.pop(name)  # finished: nothing to restart, nothing to watch
                self._needed.discard(name)
                return
            except gevent.GreenletExit:  # killed: ended on purpose, so forgotten (its name may be taken again)
                self._tasks.pop(name, None)
                self._needed.discard(name)
                raise
            except Exception:  # the point: whatever it was, it is seen, counted and restarted
                log.exception("task %s failed; starting it again", name)
                self._set_running(name, False)
                if time.monotonic() - started >= self._window:
                    backoff.reset()
                if not self._failed(name):
                    return
            gevent.sleep(backoff.next())
            self._set_running(name, True)
            log.info("task %s started again", name)

    def _set_running(self, name: str, running: bool) -> None:
        self._tasks[name] = running
        if self.on_health is not None:
            self.on_health()

    def _run_helper(self, function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        try:
            return function(*args)
        except Exception:  # logged here in the process's format, not printed by gevent's hub
            name = getattr(function, "__qualname__", None) or repr(function)
            log.exception("helper %s failed", name)
            self._failed(name)
            return None

    def _failed(self, name: str) -> bool:
        """Count a failure; False once the restart intensity is passed (the supervisor has given up)."""
        self.failures[name] += 1
        now = time.monotonic()
        recent = self._recent
        recent.append(now)
        while recent and now - recent[0] > self._window:
            recent.popleft()
        if len(recent) <= self._max_failures or self.gave_up is not None:
            return self.gave_up is None
        self.gave_up = (f"{len(recent)} task failures within {self._window:g} s (the last in {name}): "
                        "giving up, the process exits for its supervisor to restart it")
        log.critical("%s", self.gave_up)
        if self.on_health is not None:
            self.on_health()
        self._on_give_up(self.gave_up)
        return False
