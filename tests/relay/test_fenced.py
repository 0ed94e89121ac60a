"""The leader's fenced write, packed by hand: the same bytes redis-py would send, the same script, the same refusal
when the lease is not the writer's, and the same errors when Redis fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import RedisError

from orderbook.relay.fenced import FencedPublish
from orderbook.relay.keys import PUBLISH, STORED_TTL_MS, Keys
from orderbook.relay.redis_url import connect
from orderbook.relay.timing import CATALOG_TTL
from tests.support.redis_server import RedisServer

KEYS = Keys("fenced-test")
TOKEN = "7 node-a"


@pytest.mark.parametrize("replace", [False, True])
def test_the_command_is_the_bytes_redis_py_packs_for_the_same_script_call(replace: bool) -> None:
    client = redis.Redis()  # never connects: packing needs no server
    pairs: list[bytes | str] = ["", b"beat\r\n\x00", "ETHBTC", b"x" * 300, "BTCÜSDT", b""]
    script = client.register_script(PUBLISH)
    expected = b"".join(client.connection_pool.make_connection().pack_command(
        "EVALSHA", script.sha, 3, KEYS.lease, KEYS.latest, KEYS.catalog, TOKEN, KEYS.channel, STORED_TTL_MS,
        int(CATALOG_TTL * 1000), "1" if replace else "0", *pairs))
    publish = FencedPublish(client, KEYS)
    assert publish.command(TOKEN, replace, pairs) == expected
    assert publish.command("8 node-b", replace, pairs) != expected  # a new token, a new head
    assert publish.command(TOKEN, replace, pairs) == expected


def test_it_writes_only_under_its_own_lease_and_loads_the_script_when_redis_has_lost_it(
        redis_server: RedisServer, redis_client: redis.Redis) -> None:
    publish = FencedPublish(connect(redis_server.url, 1.0, "fenced-test"), KEYS)
    assert publish(TOKEN, True, ["ETHBTC", b"one"]) is False  # no lease at all
    assert redis_client.hgetall(KEYS.latest) == {}
    redis_client.set(KEYS.lease, TOKEN)
    assert publish(TOKEN, True, ["", b"beat", "ETHBTC", b"one"]) is True
    assert redis_client.hgetall(KEYS.latest) == {b"ETHBTC": b"one"} and redis_client.get(KEYS.catalog) == b"beat"
    assert publish("8 node-b", False, ["ETHBTC", b"forged"]) is False
    redis_client.script_flush()  # as after a restart: EVALSHA answers NOSCRIPT
    assert publish(TOKEN, False, ["ETHBTC", b"two"]) is True
    assert redis_client.hget(KEYS.latest, "ETHBTC") == b"two"


@pytest.fixture
def written_once(starts_processes: None, tmp_path: Path) -> Iterator[tuple[RedisServer, FencedPublish]]:
    """A Redis of the test's own, and a fenced publish that has written once there under ``TOKEN``'s lease."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        publish = FencedPublish(connect(server.url, 1.0, "fenced-test"), KEYS)
        server.client().set(KEYS.lease, TOKEN)
        assert publish(TOKEN, False, ["ETHBTC", b"one"]) is True
        yield server, publish
    finally:
        server.stop()


def test_a_redis_that_goes_away_raises_and_the_next_write_connects_again(
        written_once: tuple[RedisServer, FencedPublish]) -> None:
    server, publish = written_once
    server.stop()
    with pytest.raises(RedisError):
        publish(TOKEN, False, ["ETHBTC", b"two"])
    server.start()
    server.client().set(KEYS.lease, TOKEN)
    assert publish(TOKEN, False, ["ETHBTC", b"three"]) is True  # and the script loaded again
    assert server.client().hget(KEYS.latest, "ETHBTC") == b"three"


def test_the_first_write_of_a_new_lease_after_redis_came_back_meanwhile_succeeds(
        written_once: tuple[RedisServer, FencedPublish]) -> None:
    """No write while Redis was away (the node had stepped down): the connection kept from the last lease was closed
    by the Redis that went, and the next lease's first write must not fail on it."""
    server, publish = written_once
    server.kill()
    server.start()  # the same port, empty
    server.client().set(KEYS.lease, "8 node-a")
    assert publish("8 node-a", True, ["ETHBTC", b"two"]) is True
    assert server.client().hget(KEYS.latest, "ETHBTC") == b"two"
