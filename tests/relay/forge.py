"""What a leader writes into Redis, made by hand: real ``orderbook.Summary`` bytes, envelopes, a leader that holds
the lease and publishes as a book node does, and book nodes whose ticks a test drives. The hostile tests write
beside them whatever a forger would."""

from __future__ import annotations

import itertools

import gevent
import redis

from orderbook.proto import orderbook_pb2
from orderbook.relay import envelope
from orderbook.relay.keys import DEFAULT_KEYS, Keys
from orderbook.relay.node import BookNode, OtherDeployment
from orderbook.serving.symbols import ServedSymbols
from orderbook.symbol_state import SymbolState

SYMBOLS = ("ETHBTC", "BTCUSDT")
DEPTH = 10
LEASE = 0.4
"""A book node's lease here: short, so that a test waits little for one to lapse."""


def summary(price: float, levels: int = 3) -> bytes:
    """A summary ``levels`` deep on each side around ``price``, serialized as the leader serializes one."""
    bids = [orderbook_pb2.Level(exchange="binance", price=price - index, amount=1.5) for index in range(levels)]
    asks = [orderbook_pb2.Level(exchange="bitstamp", price=price + 1 + index, amount=2.5) for index in range(levels)]
    return orderbook_pb2.Summary(spread=1.0, bids=bids, asks=asks).SerializeToString()


def price_of(data: bytes) -> float:
    """The ``price`` a summary made by :func:`summary` was made around."""
    return orderbook_pb2.Summary.FromString(data).bids[0].price


def state(symbol: str = "ETHBTC", in_step: tuple[str, ...] = ("binance",)) -> SymbolState:
    return SymbolState(symbol, ("binance", "bitstamp"), in_step)


class Leader:
    """A leader of ``epoch`` that holds the lease and publishes straight through Redis (unfenced: a test writes
    what it pleases), numbering its envelopes as a book node does."""

    def __init__(self, client: redis.Redis, epoch: int = 1, node: str = "leader", keys: Keys = DEFAULT_KEYS,
                 key: bytes | None = None) -> None:
        self.client, self.epoch, self.node, self.keys, self.key = client, epoch, node, keys, key
        self.sequence = itertools.count(1)

    def hold(self) -> Leader:
        self.client.set(self.keys.lease, f"{self.epoch} {self.node}")
        return self

    def heartbeat(self, symbols: tuple[str, ...] = SYMBOLS, depth: int = DEPTH) -> bytes:
        data = envelope.heartbeat(self.epoch, next(self.sequence), self.node, symbols, depth, self.key)
        self.client.set(self.keys.catalog, data)
        self.client.publish(self.keys.channel, data)
        return data

    def update(self, price: float, symbol: str = "ETHBTC") -> bytes:
        data = envelope.update(self.epoch, next(self.sequence), self.node, state(symbol), summary(price), self.key)
        self.client.hset(self.keys.latest, symbol, data)
        self.client.publish(self.keys.channel, data)
        return data


class Node:
    """A book node's relay side over books of its own, with a settable count of symbols in step; ``conflicts``
    keeps what it was told to end with."""

    def __init__(self, url: str, in_step: int = 1, symbols: tuple[str, ...] = SYMBOLS, keys: Keys = DEFAULT_KEYS,
                 key: bytes | None = None, lease: float = LEASE) -> None:
        self.in_step = in_step
        self.served = ServedSymbols(symbols, DEPTH)
        for symbol in symbols:
            self.served.set_state(SymbolState(symbol, ("binance", "bitstamp"), ("binance",)))
        self.greenlets: dict[str, gevent.Greenlet] = {}
        self.conflicts: list[OtherDeployment] = []
        self.relay = BookNode(url, self.served, lambda: self.in_step, self._task, on_conflict=self.conflicts.append,
                              keys=keys, key=key, lease_ttl=lease, tick=0.05)

    def _task(self, name, function, *args):
        self.greenlets[name] = gevent.spawn(function, *args)
        return self.greenlets[name]

    def kill(self) -> None:
        gevent.killall(list(self.greenlets.values()))
