"""Simulator processes shared by a module's tests (starting one costs ~0.3 s)."""

from __future__ import annotations

import pytest

from orderbook.simulator.process import SimulatorProcess


@pytest.fixture(scope="module")
def sim():
    """A default simulator at a moderate rate, with a short server ping interval."""
    with SimulatorProcess("--rate", "200", "--binance-ping-interval", "0.3", "--binance-pong-timeout", "0.8",
                          "--binance-weight-limit", "100000") as process:
        yield process


@pytest.fixture
def make_sim():
    """Start simulators with custom flags; each is stopped at the end of the test."""
    started: list[SimulatorProcess] = []

    def start(*args: str) -> SimulatorProcess:
        process = SimulatorProcess(*args).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
