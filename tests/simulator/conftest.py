"""Simulator processes shared by a module's tests (starting one costs ~0.3 s)."""

from __future__ import annotations

import pytest

from orderbook.simulator.process import SimulatorProcess


@pytest.fixture(scope="module")
def sim(starts_processes: None):
    """A default simulator at a moderate rate.

    Server pings keep their real 20 s interval: a client's pongs count against Binance's 5 messages per second, so
    fast pings would crowd out a test's own messages (the ping test starts its own simulator).
    """
    with SimulatorProcess("--rate", "200", "--binance-weight-limit", "100000") as process:
        yield process


@pytest.fixture
def make_sim(starts_processes: None):
    """Start simulators with custom flags; each is stopped at the end of the test."""
    started: list[SimulatorProcess] = []

    def start(*args: str) -> SimulatorProcess:
        process = SimulatorProcess(*args).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
