"""The two tiers of the suite: tests that start processes (marked ``e2e``) and the rest, pure or in process.

``make test-fast`` runs the second tier only (``-m "not e2e"``), as the inner loop; ``make test`` runs both. Which
tier a test is in is not written by hand on the test: every fixture that starts a process (the simulator, the
server, Redis, Prometheus, helper scripts, a command run to its end) requests the fixture :data:`STARTS_PROCESSES`,
and a test whose fixture closure includes it, however indirectly, is marked ``e2e`` at collection
(:func:`mark_process_tests`). A new test that uses ``simulator_factory`` lands in the right tier without a thought.

The closure is known before the test runs, so a process started some other way would go unnoticed and slow the
fast tier down, or fail it on a machine without redis-server. So while a test outside the ``e2e`` tier runs (its
set-up, call and tear-down), starting a process fails it at once, saying which fixture to use
(:func:`processes_forbidden`).

``make test`` runs the suite in parallel (pytest-xdist), but for the tests marked ``alone`` (an overload, the
benchmark's scenarios, delays compared with a baseline: they need the machine to themselves), which it runs after,
one at a time; the long load producers share a worker (:data:`one_at_a_time`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

STARTS_PROCESSES = "starts_processes"
"""The fixture every process-starting fixture requests (defined in ``tests/conftest.py``)."""

TIER = "e2e"

one_at_a_time = pytest.mark.xdist_group("one_at_a_time")
"""For the tests that load the machine for minutes (two minutes of fast sync traffic, a soak): ``make test`` runs them
one after the other on one worker (``--dist loadgroup``), so they never add up, while the other workers run the rest.
Tests that need the machine to themselves are marked ``alone`` instead: ``make test`` runs those after the parallel
run, one at a time."""


def mark_process_tests(items: Iterable[pytest.Item]) -> None:
    """Mark ``e2e`` every test whose fixtures start processes."""
    for item in items:
        if STARTS_PROCESSES in getattr(item, "fixturenames", ()):
            item.add_marker(TIER)


def starts_processes(item: pytest.Item) -> bool:
    return item.get_closest_marker(TIER) is not None


def _spawners() -> list[tuple[Any, str]]:
    """Every way a process can be started from here: subprocess (and so ``subprocess.run``, ``os.popen``,
    asyncio), gevent's own subprocess (when loaded), and the os module's forks, spawns and ``system``."""
    targets: list[tuple[Any, str]] = [(subprocess.Popen, "_execute_child")]
    if (gevent_subprocess := sys.modules.get("gevent.subprocess")) is not None:
        targets.append((gevent_subprocess.Popen, "_execute_child"))
    targets += [(os, name) for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system")
                if hasattr(os, name)]
    return targets


def _refuse(nodeid: str, what: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(
            f"{nodeid} started a process ({what}) but is not in the {TIER} tier: start it through a fixture that "
            f"requests {STARTS_PROCESSES!r} (tests/conftest.py), such as simulator_factory or server_factory, so "
            "that the test is marked by the fixture (tests/support/tiers.py)",
            pytrace=True,
        )

    return refuse


@contextmanager
def processes_forbidden(item: pytest.Item) -> Iterator[None]:
    """Within the block, starting a process fails ``item``, unless it is in the ``e2e`` tier."""
    if starts_processes(item):
        yield
        return
    saved = [(owner, name, owner.__dict__[name]) for owner, name in _spawners()]
    for owner, name, _ in saved:
        setattr(owner, name, _refuse(item.nodeid, f"{getattr(owner, '__name__', owner)}.{name}"))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
