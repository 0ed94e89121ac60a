"""Reuses the end-to-end fixtures (simulator, server, reader as real processes) and adds client subprocesses."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

E2E = Path(__file__).parents[1] / "e2e"
sys.path.insert(0, str(E2E))

# Loaded under its own name: pytest imports every conftest.py as plain "conftest".
_spec = importlib.util.spec_from_file_location("e2e_conftest", E2E / "conftest.py")
assert _spec is not None and _spec.loader is not None
e2e_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e_conftest)

simulator_factory = e2e_conftest.simulator_factory
server_factory = e2e_conftest.server_factory
reader_factory = e2e_conftest.reader_factory

REPO_ROOT = Path(__file__).resolve().parents[2]
STREAM_CLIENTS = Path(__file__).resolve().parent / "stream_clients.py"


class ClientProcess:
    """``stream_clients.py`` as a child process; :meth:`wait_ready` returns once its streams are open."""

    def __init__(self, target: str, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, str(STREAM_CLIENTS), target, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )

    def wait_ready(self, timeout: float = 40.0) -> None:
        assert self.proc.stdout is not None
        # The helper gives up on its own after 30 s; it prints exactly one line, or exits.
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            _, err = self.proc.communicate(timeout=timeout)
            raise AssertionError(f"client process not ready: {line!r} {err.decode(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def client_process_factory() -> Iterator[Callable[..., ClientProcess]]:
    started: list[ClientProcess] = []

    def start(target: str, *args: str) -> ClientProcess:
        process = ClientProcess(target, *args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
