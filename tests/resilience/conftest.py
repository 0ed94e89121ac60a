"""The e2e harness and fixtures (simulator, server, reader as real processes), plus one ready system per test.

The e2e directory is not a package: its harness is imported by path, and its conftest is loaded under its own
module name so that its fixtures (which stop every process they started) are reused here, not copied.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

E2E_DIR = Path(__file__).resolve().parents[1] / "e2e"
sys.path.insert(0, str(E2E_DIR))


def _load_e2e_fixtures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("e2e_fixtures", E2E_DIR / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_e2e = _load_e2e_fixtures()
simulator_factory = _e2e.simulator_factory
server_factory = _e2e.server_factory
reader_factory = _e2e.reader_factory

from resilience_harness import (  # after the e2e directory is on sys.path
    EXCHANGES,
    SILENCE_TIMEOUT,
    SIM_ARGS,
    System,
    WatchedReader,
)

from orderbook.simulator.process import SimulatorProcess


@pytest.fixture
def start_system(
    simulator_factory: Callable[..., SimulatorProcess], server_factory: Callable[..., object]
) -> Iterator[Callable[..., System]]:
    """Start a simulator (100 events/s per exchange, plus ``sim_args``) and a server (``--silence-timeout 2``,
    plus ``server_args``), and return once a reader sees both exchanges served.

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
        return System(simulator, server, reader)

    yield start
    for reader in readers:
        reader.close()


@pytest.fixture
def system(start_system: Callable[..., System]) -> System:
    return start_system()
