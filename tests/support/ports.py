"""Ports without races.

"Bind port 0, close the socket, hand the number to another process" is a race: anything may take the port in
between. Here every server the tests start binds port 0 itself and reports the port it got:

- ``bin/run-server``: ``--grpc-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --ready-file PATH``; once both
  listeners are up it writes ``{"grpc_port": N, "metrics_port": N}`` to PATH (:func:`read_ready_file`);
- the test helper scripts (``serve_helper.py``, ``metrics_http_helper.py``) print ``PORT n`` once listening;
- Prometheus (``--web.listen-address=127.0.0.1:0``) logs ``msg="Listening on" address=127.0.0.1:n`` at info level
  (:func:`logged_port`).

A port that must refuse connections is held by the test itself, bound but never listening, for as long as it is
needed (:func:`refusing_port`): a connection to it is refused, and no one else can bind it meanwhile.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.waiting import wait_until

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class BoundPorts:
    """What ``bin/run-server --ready-file`` reports: the ports it listens on (metrics None with ``off``)."""

    grpc: int
    metrics: int | None


def server_port_args(ready_file: Path, metrics: bool = True) -> list[str]:
    """``bin/run-server`` arguments: gRPC (and /metrics) on any free loopback port, reported in ``ready_file``."""
    return ["--grpc-addr", f"{LOOPBACK}:0", "--metrics-addr", f"{LOOPBACK}:0" if metrics else "off",
            "--ready-file", str(ready_file)]


def _exited(proc: subprocess.Popen, log: Callable[[], str], what: str) -> AssertionError:
    return AssertionError(f"pid {proc.pid} exited with {proc.returncode} before {what}:\n{log()[-3000:]}")


def read_ready_file(path: Path, proc: subprocess.Popen, timeout: float = 30.0,
                    log: Callable[[], str] = lambda: "") -> BoundPorts:
    """The ports ``proc`` (``bin/run-server --ready-file path``) reports once listening; fails with ``log()`` if it
    exits first or takes longer than ``timeout``. The file is replaced atomically, so it is never read half
    written; it must not exist before the server starts."""

    def written() -> dict | None:
        if path.exists():
            return json.loads(path.read_text())
        if proc.poll() is not None:
            raise _exited(proc, log, "writing its ready file")
        return None

    try:
        ports = wait_until(written, timeout, f"{path} (the server's bound ports)", interval=0.05)
    except AssertionError as error:
        if proc.poll() is None:  # timed out while running: show what it said meanwhile
            raise AssertionError(f"{error}\n{log()[-3000:]}") from None
        raise
    return BoundPorts(ports["grpc_port"], ports["metrics_port"])


class ReadyFilePorts:
    """What a ``bin/run-server`` started with :func:`server_port_args` bound, read from its ready file on first use.

    A subclass sets ``ready_file`` and ``proc``, and says in :meth:`ready_log` what to show if the server died.
    """

    ready_file: Path
    proc: subprocess.Popen
    ready_timeout = 30.0
    _ports: BoundPorts | None = None

    def ready_log(self) -> str:
        raise NotImplementedError

    @property
    def ports(self) -> BoundPorts:
        if self._ports is None:
            self._ports = read_ready_file(self.ready_file, self.proc, timeout=self.ready_timeout, log=self.ready_log)
        return self._ports

    @property
    def grpc_port(self) -> int:
        return self.ports.grpc

    @property
    def metrics_port(self) -> int:
        assert self.ports.metrics is not None, "started with --metrics-addr off"
        return self.ports.metrics

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def logged_port(log_path: Path, pattern: str, proc: subprocess.Popen,
                timeout: float = 30.0) -> int:
    """The port in the first match of ``pattern`` (its group 1) in the log ``proc`` writes to ``log_path``."""

    def log() -> str:
        return log_path.read_text(errors="replace") if log_path.exists() else ""

    def found() -> int | None:
        if match := re.search(pattern, log()):
            return int(match[1])
        if proc.poll() is not None:
            raise _exited(proc, log, f"logging its port ({pattern!r})")
        return None

    return wait_until(found, timeout, f"a line matching {pattern!r} in {log_path}", interval=0.05)


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections while the block runs: bound here, never listening."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        yield sock.getsockname()[1]
