"""A private ``redis-server`` for the cluster demo and the tests, and ``redis-sentinel`` s watching it.

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

    def __init__(self, directory: Path, binary: str, port: int | None = None, *, replica_of: int | None = None) -> None:
        """``binary``: redis-server's path (:func:`redis_server_binary`); ``port``: a fixed one (the demo's), else a
        free one is chosen; ``replica_of``: the port of the master it replicates, on loopback."""
        self.directory = directory
        self.binary = binary
        self.port = port
        self.replica_of = replica_of
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
             "--dir", str(self.directory), "--logfile", str(self.log_path), "--daemonize", "no",
             *(("--replicaof", LOOPBACK, str(self.replica_of)) if self.replica_of is not None else ())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        return self._answers()

    def _answers(self) -> bool:
        """Whether the process just launched answers; False if it exited because its port was taken."""
        assert self.proc is not None
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


def redis_sentinel_binary() -> str:
    """redis-sentinel's absolute path, or :class:`RedisMissing` saying how to get it."""
    path = shutil.which("redis-sentinel")
    if path is None:
        raise RedisMissing("redis-sentinel not found on PATH: install it (Debian: apt-get install redis-sentinel; "
                           "make cluster-demo does it when run as root)")
    return path


class SentinelProcess(RedisProcess):
    """One redis-sentinel watching the master ``master`` on loopback port ``master_port``: it takes the master for
    down after ``down_after`` seconds without an answer, and with ``quorum`` sentinels agreeing, one of them
    promotes a replica (Sentinel's failover)."""

    def __init__(self, directory: Path, binary: str, master: str, master_port: int, *, quorum: int = 2,
                 down_after: float = 1.0, port: int | None = None) -> None:
        super().__init__(directory, binary, port)
        self.master, self.master_port, self.quorum, self.down_after = master, master_port, quorum, down_after

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "sentinel.log"

    def _launch(self) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"  # Sentinel rewrites it as it learns: its own, in its directory
        config.write_text(f"""port {self.port}
bind {LOOPBACK}
daemonize no
dir {self.directory}
logfile {self.log_path}
sentinel monitor {self.master} {LOOPBACK} {self.master_port} {self.quorum}
sentinel down-after-milliseconds {self.master} {int(self.down_after * 1000)}
sentinel failover-timeout {self.master} {int(self.down_after * 10_000)}
sentinel parallel-syncs {self.master} 1
""")
        self.proc = subprocess.Popen([self.binary, str(config)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        return self._answers()


def sentinels_ready(sentinels: list[SentinelProcess], replica: RedisProcess) -> bool:
    """Whether a failover could be made now: the replica is in sync, and every sentinel knows the others and the
    replica (sentinels find each other through the master, saying hello every 2 s)."""
    try:
        with replica.client() as client:
            if client.info("replication").get("master_link_status") != "up":
                return False
        for sentinel in sentinels:
            with sentinel.client() as client:
                master = sentinel.master
                if (len(client.sentinel_sentinels(master)) != len(sentinels) - 1
                        or len(client.sentinel_slaves(master)) != 1):
                    return False
    except redis.RedisError:
        return False
    return True


def sentinel_url(sentinels: list[SentinelProcess], master: str, database: int = 0) -> str:
    """The ``redis+sentinel://`` URL of ``master`` through ``sentinels``."""
    return f"redis+sentinel://{','.join(sentinel.address for sentinel in sentinels)}/{master}/{database}"
