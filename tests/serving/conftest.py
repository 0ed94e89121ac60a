"""Fixtures that run the gRPC server in its own gevent process (``serve_helper.py``) and talk to it for real."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serving_support import Helper

from tests.support.ports import refusing_port


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
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections for the whole test (held, bound but not listening)."""
    with refusing_port() as port:
        yield port
