"""An edge's source: the leader's envelopes, read from Redis into the edge's :class:`SymbolBooks`.

A (re)connection subscribes to the channel first and, once Redis has confirmed the subscription, reads the stored
catalogue and every symbol's latest in one transaction: a message published after that read arrives on the
channel, and one published before is in what was read, so nothing falls between. Then each message is taken
as it comes. An envelope is applied only if it is well formed, from the newest epoch seen (an older one is a
deposed leader's, dropped), and newer than what its symbol already has (the channel may bring one the stored
read already had). A summary equal to the one served is not published again (a new leader's first write
repeats every symbol's), so clients see only real changes.

A catalogue that changes the symbols (the first one an edge hears, or a new leader's different one) makes the
edge read the stored values again: an update that came before its symbol was known is not lost until the
symbol's next change.

The epoch followed starts afresh with each connection: a leader elected after Redis restarted empty may carry a
lower epoch than the last one seen (the book nodes carry their newest epoch over, but not if they restarted
too), and what Redis holds is fenced by the lease, so it is the truth to start from.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import gevent
from redis.exceptions import RedisError

from orderbook.backoff import Backoff
from orderbook.relay import envelope, keys
from orderbook.relay.metrics import EdgeStats
from orderbook.relay.redis_url import connect, redacted
from orderbook.relay.timing import REDIS_TIMEOUT, TICK
from orderbook.serving.grpc_server import ThrottledLog
from orderbook.serving.symbols import SymbolBooks

log = logging.getLogger(__name__)


class RedisSource:
    """Follows the leader through Redis into ``books``; ``on_change`` runs after each envelope applied."""

    def __init__(self, url: str, books: SymbolBooks, stats: EdgeStats, on_change: Callable[[], None]) -> None:
        self.url = url
        self.connected = False
        self.last_heard: float | None = None
        """``time.monotonic()`` when the leader was last heard: a message, or a catalogue found stored."""
        self._books = books
        self._stats = stats
        self._on_change = on_change
        self._redis = connect(url, REDIS_TIMEOUT, f"orderbook-edge-{os.getpid()}")
        self._applied: dict[str, tuple[int, int]] = {}
        """Each symbol's (epoch, sequence) last applied."""
        self._epoch = 0
        """The newest epoch seen on this connection: older ones are a deposed leader's."""
        self._malformed = ThrottledLog(log, logging.WARNING)
        self._outage = False
        self.behind = False
        """A new catalogue arrived: the stored latest values must be read again (:meth:`catch_up`)."""

    def run(self) -> None:
        backoff = Backoff(base=TICK, cap=5.0)
        while True:
            try:
                self._follow(backoff)
            except RedisError as error:
                self.connected = self._stats.redis_connected = False
                self._stats.redis_errors += 1
                self._on_change()
                if not self._outage:
                    self._outage = True
                    log.warning("relay: Redis at %s unreachable (%s); retrying", redacted(self.url), error)
                gevent.sleep(backoff.next())

    def _follow(self, backoff: Backoff) -> None:
        pubsub = self._redis.pubsub()
        try:
            pubsub.subscribe(keys.CHANNEL)
            while (message := pubsub.get_message(timeout=REDIS_TIMEOUT)) is None or message["type"] != "subscribe":
                if message is None:
                    raise RedisError("no subscription confirmed within the Redis timeout")
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(keys.CATALOG)
                pipe.hgetall(keys.LATEST)
                catalog, latest = pipe.execute()
            self._connected(catalog is not None)
            backoff.reset()
            for data in (catalog, *latest.values()):
                if data is not None:
                    self.take(data, live=False)
            while True:
                message = pubsub.get_message(timeout=TICK)
                if message is not None and message["type"] == "message":
                    self.take(message["data"], live=True)
                if self.behind:
                    self.catch_up()
        finally:
            pubsub.close()

    def _connected(self, leader_alive: bool) -> None:
        if self._outage:
            log.info("relay: Redis answers again")
            self._outage = False
        self.connected = self._stats.redis_connected = True
        self._epoch = 0
        self._applied.clear()
        if leader_alive:
            self.last_heard = self._stats.last_message_at = time.monotonic()
        self._on_change()

    def catch_up(self) -> None:
        """Read every symbol's stored latest again: those whose updates came before the catalogue named them."""
        self.behind = False
        for data in self._redis.hgetall(keys.LATEST).values():
            self.take(data, live=False)

    def take(self, data: bytes, live: bool) -> None:
        """Apply one envelope (``live``: just published, from the channel; else read from what Redis stores)."""
        stats = self._stats
        try:
            item = envelope.read(data)
        except envelope.BadEnvelope as error:
            stats.dropped["malformed"] += 1
            self._malformed.event("relay: a malformed envelope dropped: %s", error)
            return
        if item.epoch < self._epoch:
            stats.dropped["old_epoch"] += 1
            return
        if item.epoch > self._epoch:
            if item.epoch != stats.epoch:
                if stats.epoch:
                    stats.leader_changes += 1
                log.info("relay: following the leader of epoch %d (%s)", item.epoch, item.node)
            self._epoch = stats.epoch = item.epoch
        hop = max(0.0, (time.time_ns() - item.published_ns) / 1e9)
        if live:
            self.last_heard = stats.last_message_at = time.monotonic()
            stats.hop.observe(hop)
            stats.received[type(item).__name__.lower()] += 1
        if isinstance(item, envelope.Heartbeat):
            if self._books.reconfigure(item.symbols, item.depth):
                self._applied = {symbol: seen for symbol, seen in self._applied.items() if symbol in item.symbols}
                self.behind = live
                log.info("relay: serving %d symbols (default %s) at depth %d", len(item.symbols), item.symbols[0],
                         item.depth)
            self._on_change()
            return
        symbol, books = item.symbol, self._books
        if (item.epoch, item.sequence) <= self._applied.get(symbol, (0, 0)):
            stats.dropped["old_sequence"] += 1
            return
        try:
            books.set_state(item.state)
        except KeyError:
            stats.dropped["unknown_symbol"] += 1
            return
        except ValueError as error:
            stats.dropped["malformed"] += 1
            self._malformed.event("relay: an update of %s dropped: %s", symbol, error)
            return
        self._applied[symbol] = (item.epoch, item.sequence)
        if item.summary and item.summary != books.summary(symbol):
            books.publish_summary(symbol, item.summary)  # published here, now: the hop has its own histogram
        self._on_change()
