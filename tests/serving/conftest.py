"""Fixtures that run the gRPC server in its own gevent process (``serve_helper.py``) and talk to it for real."""

from __future__ import annotations

import socket
import subprocess
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


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
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
