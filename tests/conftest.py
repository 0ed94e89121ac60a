"""Fixtures every test folder can use: a TLS certificate, and the simulator, server and readers as real processes;
and the hooks that put each test in its tier (:mod:`tests.support.tiers`).

The process fixtures stop every process they started, whatever the outcome. Their classes live in
:mod:`tests.support.service` and :mod:`orderbook.simulator.process`. Each requests :func:`starts_processes`, which
marks the tests that use it ``e2e``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from orderbook.simulator.process import SimulatorProcess
from tests.support import tiers
from tests.support.service import BookReader, ServerProcess


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tiers.mark_process_tests(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    with tiers.processes_forbidden(item):
        return (yield)


@pytest.fixture(scope="session")
def starts_processes() -> None:
    """Requested by every fixture that starts a process, and so by every test that uses one: such tests are the
    ``e2e`` tier, and only they may start processes (:mod:`tests.support.tiers`). A test that runs a command
    itself requests it too (``@pytest.mark.usefixtures("starts_processes")``)."""


@pytest.fixture(scope="session")
def tls_files(starts_processes: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made with the openssl command."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def simulator_factory(starts_processes: None) -> Iterator[Callable[..., SimulatorProcess]]:
    started: list[SimulatorProcess] = []

    def start(*args: str) -> SimulatorProcess:
        simulator = SimulatorProcess(*args).start()
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.stop()


@pytest.fixture
def server_factory(starts_processes: None, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(urls: dict[str, str] | None, *extra: str) -> ServerProcess:
        server = ServerProcess(urls, tmp_path / f"server-{len(started)}.log", *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.terminate()


@pytest.fixture
def reader_factory() -> Iterator[Callable[..., BookReader]]:
    readers: list[BookReader] = []

    def open_reader(target: str, symbol: str | None = None, depth: int = 0) -> BookReader:
        reader = BookReader(target, symbol, depth)
        readers.append(reader)
        return reader

    yield open_reader
    for reader in readers:
        reader.close()
