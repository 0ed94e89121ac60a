"""The tests' redis-server: the product's own (:mod:`orderbook.relay.redis_process`), which the cluster demo uses,
with Debian's package installed first when it is missing (:mod:`tests.support.debian`)."""

from __future__ import annotations

from pathlib import Path

from orderbook.relay.redis_process import RedisProcess
from tests.support.debian import find_or_install


class RedisServer(RedisProcess):
    def __init__(self, directory: Path, port: int | None = None) -> None:
        super().__init__(directory, find_or_install("redis-server", "redis-server"), port)
