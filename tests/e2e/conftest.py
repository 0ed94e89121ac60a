"""Fixtures that start the exchange simulator and the service as real processes on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_harness import BookReader, ServerProcess

from orderbook.simulator.process import SimulatorProcess


@pytest.fixture
def simulator_factory() -> Iterator[Callable[..., SimulatorProcess]]:
    started: list[SimulatorProcess] = []

    def start(*args: str) -> SimulatorProcess:
        simulator = SimulatorProcess(*args).start()
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(urls: dict[str, str] | None, *extra: str) -> ServerProcess:
        server = ServerProcess(urls, tmp_path / f"server-{len(started)}.log", *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.terminate()


@pytest.fixture
def reader_factory() -> Iterator[Callable[[str], BookReader]]:
    readers: list[BookReader] = []

    def open_reader(target: str) -> BookReader:
        reader = BookReader(target)
        readers.append(reader)
        return reader

    yield open_reader
    for reader in readers:
        reader.close()
