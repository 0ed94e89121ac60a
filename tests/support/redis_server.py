"""The tests' redis-server: the product's own (:mod:`orderbook.relay.redis_process`), which the cluster demo uses."""

from orderbook.relay.redis_process import RedisProcess as RedisServer

__all__ = ["RedisServer"]
