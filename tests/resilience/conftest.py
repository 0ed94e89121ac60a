"""One ready system per test (simulator, server, reader as real processes), built on the fixtures every test
folder gets from ``tests/conftest.py`` (which stop every process they started).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from resilience_harness import (
    EXCHANGES,
    SILENCE_TIMEOUT,
    SIM_ARGS,
    System,
    WatchedReader,
)

from orderbook.simulator.process import SimulatorProcess
from tests.support.service import ServerProcess
from tests.support.waiting import wait_until


@pytest.fixture
def start_system(
    simulator_factory: Callable[..., SimulatorProcess], server_factory: Callable[..., ServerProcess]
) -> Iterator[Callable[..., System]]:
    """Start a simulator (100 events/s per exchange, plus ``sim_args``) and a server (``--silence-timeout 2``,
    plus ``server_args``), and return once a reader sees both exchanges served and no book waits to be deepened
    (so that no request of the start-up is still to come when a test counts requests or sets a snapshot fault).

    Fresh per test: every fault raises the server's reconnect backoff, so sharing one server would make each
    test's recovery bound depend on the tests before it.
    """
    readers: list[WatchedReader] = []

    def start(*sim_args: str, server_args: tuple[str, ...] = ()) -> System:
        simulator = simulator_factory(*SIM_ARGS, *sim_args)
        server = server_factory(simulator.urls, "--silence-timeout", str(SILENCE_TIMEOUT), *server_args)
        server.wait_serving()
        reader = WatchedReader(server.target)
        readers.append(reader)
        reader.wait_for(lambda book: book.exchanges() == set(EXCHANGES), 10, "with both exchanges")
        system = System(simulator, server, reader)
        wait_until(system.metrics, 10, "every book deepened",
                   accept=lambda samples: samples("orderbook_book_deepening") == 0, interval=0.05)
        return system

    yield start
    for reader in readers:
        reader.close()


@pytest.fixture
def system(start_system: Callable[..., System]) -> System:
    return start_system()
