"""Client subprocesses, beside the simulator, server and reader fixtures every test folder gets from
``tests/conftest.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
def client_process_factory(starts_processes: None) -> Iterator[Callable[..., ClientProcess]]:
    started: list[ClientProcess] = []

    def start(target: str, *args: str) -> ClientProcess:
        process = ClientProcess(target, *args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
