"""A real redis-server for the relay's tests: one per module, emptied before each test; and book nodes on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.relay.forge import Node
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_server(starts_processes: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def nodes(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[Callable[..., Node]]:
    """Makes book nodes on the emptied Redis (``nodes(in_step=0, symbols=...)``: :class:`Node`'s options); their
    tasks are ended after the test."""
    made: list[Node] = []

    def make(**options: Any) -> Node:
        made.append(Node(redis_server.url, **options))
        return made[-1]

    yield make
    for node in made:
        node.kill()
