"""Fixtures that run the gRPC server in its own gevent process (``serve_helper.py``) and talk to it for real."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serving_support import Helper, run_client

from tests.support.ports import refusing_port


@pytest.fixture
def start_helper(starts_processes: None, tmp_path: Path) -> Iterator[Callable[..., Helper]]:
    helpers: list[Helper] = []

    def start(*args: str) -> Helper:
        helper = Helper(list(args), tmp_path / f"helper-{len(helpers)}.stderr")
        helpers.append(helper)
        return helper

    yield start
    for helper in helpers:
        helper.close()


@pytest.fixture
def client_command(starts_processes: None) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``bin/client`` with the arguments given, run to its end (:func:`serving_support.run_client`), for a test
    that needs no server of its own."""
    return run_client


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections for the whole test (held, bound but not listening)."""
    with refusing_port() as port:
        yield port
