"""Redis without a single point of failure, on loopback: a master, a replica of it, and three sentinels watching
them (Debian's redis-server and redis-sentinel, installed first when missing), for the tests of a failover."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from orderbook.relay.redis_process import LOOPBACK, RedisProcess, SentinelProcess, sentinel_url, sentinels_ready
from tests.support.debian import find_or_install
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

MASTER = "orderbook"
"""The master's name, as the sentinels know it."""
DOWN_AFTER = 1.0
"""Seconds without an answer before a sentinel takes the master for down: the failover starts then."""
READY = 30.0
"""Seconds for the sentinels to find each other and the replica (they say hello every 2 s)."""


class SentinelRedis:
    """A master, a replica and three sentinels; :meth:`stop` ends them all."""

    def __init__(self, directory: Path) -> None:
        self.master = RedisServer(directory / "master")
        self.replica: RedisProcess | None = None
        self.sentinels: list[SentinelProcess] = []
        try:
            self.master.start()
            self.replica = RedisProcess(directory / "replica", self.master.binary, replica_of=self.master.port)
            self.replica.start()
            binary = find_or_install("redis-sentinel", "redis-sentinel")
            for index in range(3):
                assert self.master.port is not None
                sentinel = SentinelProcess(directory / f"sentinel-{index}", binary, MASTER, self.master.port,
                                           down_after=DOWN_AFTER)
                self.sentinels.append(sentinel)
                sentinel.start()
            wait_until(self._ready, READY, "the sentinels to know each other and the replica in sync", interval=0.2)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return sentinel_url(self.sentinels, MASTER)

    def _ready(self) -> bool:
        assert self.replica is not None
        return sentinels_ready(self.sentinels, self.replica)

    def master_port(self) -> int | None:
        """The master's port as a majority of the sentinels name it now (None while they do not agree)."""
        ports = []
        for sentinel in self.sentinels:
            try:
                with sentinel.client() as client:
                    host, port = client.sentinel_get_master_addr_by_name(MASTER)
            except redis.RedisError:
                continue
            assert host in (LOOPBACK, LOOPBACK.encode())
            ports.append(int(port))
        top = max(set(ports), key=ports.count, default=None)
        return top if top is not None and ports.count(top) >= 2 else None

    def master_client(self) -> redis.Redis:
        """A client of the master the sentinels name now."""
        port = self.master_port()
        assert port is not None, "the sentinels name no master now"
        return redis.Redis(host=LOOPBACK, port=port, socket_timeout=5, socket_connect_timeout=5)

    def lose_on_the_replica(self, *keys: str) -> None:
        """Delete ``keys`` on the replica only (made writable for it), as a replica that had not received the writes
        that made them would have lost them: the master goes on without writing them again while it leads (what
        it sends then, such as a lease's renewal, does nothing to a key the replica lacks)."""
        port = self.master_port()
        replica = next(server for server in (self.master, self.replica) if server is not None and server.port != port)
        with replica.client() as client:
            client.config_set("replica-read-only", "no")
            client.delete(*keys)

    def kill_master(self) -> float:
        """``kill -9`` of whichever server is the master now; returns the ``time.monotonic()`` it was sent."""
        port = self.master_port()
        victim = next(server for server in (self.master, self.replica) if server is not None and server.port == port)
        sent = time.monotonic()
        victim.kill()
        return sent

    def logs(self) -> str:
        servers = [self.master, self.replica, *self.sentinels]
        return "\n".join(f"--- {server.log_path}\n{server.log()[-1500:]}" for server in servers if server is not None)

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.master):
            if server is not None:
                server.stop()
