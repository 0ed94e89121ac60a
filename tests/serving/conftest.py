"""Fixtures that run the gRPC server in its own gevent process (``serve_helper.py``) and talk to it for real."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serving_support import Helper


@pytest.fixture
def start_helper(tmp_path: Path) -> Iterator[Callable[..., Helper]]:
    helpers: list[Helper] = []

    def start(*args: str) -> Helper:
        helper = Helper(list(args), tmp_path / f"helper-{len(helpers)}.stderr")
        helpers.append(helper)
        return helper

    yield start
    for helper in helpers:
        helper.close()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound then released; good enough on a quiet test machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
