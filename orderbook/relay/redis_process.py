"""A private ``redis-server`` for the cluster demo and the tests.

The program is looked up on PATH and never installed from here: ``make cluster-demo`` and the tests install
Debian's package when it is missing (``tests/support/debian.py``, development tooling outside this package).

Each one runs in the foreground as the caller's child, on loopback, with its files in a directory of the caller's
and persistence off. redis-server cannot pick a port itself and report it (``--port 0`` turns TCP off),
so a free port is chosen below the kernel's ephemeral range, where no outgoing connection can be holding it
when the server restarts on it; should another program take it first, redis-server says so and exits, and a
different port is chosen.
"""

from __future__ import annotations

import random
import signal
import socket
import shutil
import subprocess
import time
from pathlib import Path
from typing import Self

import redis

LOOPBACK = "127.0.0.1"
PORTS = (20_000, 32_000)
"""Below Linux's default ephemeral range (32768-60999)."""
IN_USE = "Address already in use"


def _free_port(rng: random.Random) -> int:
    while True:
        port = rng.randrange(*PORTS)
        with socket.socket() as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                continue
            return port


START_TIMEOUT = 15.0


class RedisStartError(RuntimeError):
    """redis-server did not start; the message has the end of its log."""


class RedisMissing(RedisStartError):
    """There is no redis-server on PATH."""


def redis_server_binary() -> str:
    """redis-server's absolute path, or :class:`RedisMissing` saying how to get it."""
    path = shutil.which("redis-server")
    if path is None:
        raise RedisMissing("redis-server not found on PATH: install it (Debian: apt-get install redis-server; "
                           "make cluster-demo does it when run as root)")
    return path


class RedisProcess:
    """One redis-server; :meth:`kill` and :meth:`start` again keep its port (a restart, as clients see it)."""

    def __init__(self, directory: Path, binary: str, port: int | None = None) -> None:
        """``binary``: redis-server's path (:func:`redis_server_binary`); ``port``: a fixed one (the demo's), else a
        free one is chosen."""
        self.directory = directory
        self.binary = binary
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self._rng = random.Random()

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> Self:
        """Start on a new free port, or on the same one again after :meth:`kill` / :meth:`stop`."""
        restart = self.port is not None
        for _ in range(10):
            if not restart:
                self.port = _free_port(self._rng)
            if self._launch():
                return self
            if restart:
                break
        raise RedisStartError(f"redis-server did not start:\n{self.log()[-2000:]}")

    def _launch(self) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "--bind", LOOPBACK, "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--logfile", str(self.log_path), "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = self.client()
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while self.proc.poll() is None:
                try:
                    if client.ping():
                        return True
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        self.kill()
                        raise RedisStartError(f"redis-server did not answer within {START_TIMEOUT:g} s") from None
                    time.sleep(0.02)
        finally:
            client.close()
        if IN_USE not in self.log():
            raise RedisStartError(f"redis-server exited with {self.proc.returncode}:\n{self.log()[-2000:]}")
        return False

    def client(self) -> redis.Redis:
        assert self.port is not None, "start() first: it chooses the port"
        return redis.Redis(host=LOOPBACK, port=self.port, socket_timeout=5, socket_connect_timeout=5)

    def kill(self) -> None:
        """SIGKILL: gone at once, its data with it (persistence is off)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
