"""A book node's side of the relay (``bin/run-server --publish URL``): take part in the election, and publish every
symbol's summary and state while leader.

Every book node of a deployment follows the same symbols and keeps its books in step; one of them, the leader,
holds the lease (:mod:`orderbook.relay.keys`) and publishes. Each :data:`~orderbook.relay.timing.TICK` a node
reports how many of its symbols are in step on some venue; the leader renews its lease, and a standby tries to
take it (it succeeds once the lease has lapsed: the leader died, hung, or lost Redis). Two rules keep the better
node in charge: a standby with nothing in step does not take the lease while another node has something in step,
and a leader with nothing in step gives the lease up when a standby has. A node that stops cleanly gives its lease
up at once, so a restart costs no more than a tick.

While leader, :class:`BookNode` follows the served books (:meth:`SymbolBooks.follow`, latest value only: a slow
Redis skips summaries, never queues them) and publishes each batch of changed symbols with one fenced script call:
first every symbol and the catalogue (a new leader replaces what the last one stored), then each change, and a
heartbeat every :data:`~orderbook.relay.timing.HEARTBEAT_INTERVAL`. The node's own gRPC clients are served as
before whatever happens to Redis: when it is unreachable the node retries with backoff and logs it once per
outage.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable

import gevent
import gevent.event
from redis.exceptions import RedisError

from orderbook.backoff import Backoff
from orderbook.relay import envelope, keys
from orderbook.relay.metrics import NodeStats
from orderbook.relay.redis_url import connect, redacted
from orderbook.relay.timing import CATALOG_TTL, HEARTBEAT_INTERVAL, LEASE_TTL, REDIS_TIMEOUT, TICK
from orderbook.serving.symbols import SymbolBooks

log = logging.getLogger(__name__)


def node_name() -> str:
    """This process, unique in the deployment: host, pid and a random part (a pid can be reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class BookNode:
    """Elects and publishes for one book process; see the module docstring."""

    def __init__(self, url: str, books: SymbolBooks, symbols_in_step: Callable[[], int],
                 spawn: Callable[..., gevent.Greenlet], *, lease_ttl: float = LEASE_TTL, tick: float = TICK) -> None:
        """``symbols_in_step``: how many symbols have a venue in step now (the handover rule's measure)."""
        self.url = url
        self.name = node_name()
        self.stats = NodeStats()
        self._books = books
        self._symbols_in_step = symbols_in_step
        self._spawn = spawn
        self._lease_ttl, self._tick = lease_ttl, tick
        self._redis = connect(url, REDIS_TIMEOUT, f"orderbook-node-{os.getpid()}")
        self._acquire = self._redis.register_script(keys.ACQUIRE)
        self._renew = self._redis.register_script(keys.RENEW)
        self._release = self._redis.register_script(keys.RELEASE)
        self._publish = self._redis.register_script(keys.PUBLISH)
        self._report = self._redis.register_script(keys.REPORT)
        self._token: str | None = None
        """``"<epoch> <node>"`` while leader: the lease's value, checked by every write."""
        self._renewed_at = 0.0
        self._leading = gevent.event.Event()
        self._sequence = itertools.count(1)
        self._outage = False

    @property
    def leader(self) -> bool:
        return self._token is not None

    def start(self) -> None:
        log.info("relay: publishing through %s as book node %s (lease %.1f s)", redacted(self.url), self.name,
                 self._lease_ttl)
        self._spawn(self._elect)
        self._spawn(self._publish_while_leader)
        self._spawn(self._heartbeat)

    def stop(self) -> None:
        """Give the lease up, if held, so that a standby takes over at once."""
        token = self._token
        if token is None:
            return
        self._step_down("stopping")
        try:
            self._release(keys=[keys.LEASE], args=[token])
            log.info("relay: lease of epoch %s given up", token.split()[0])
        except RedisError as error:
            log.warning("relay: could not give the lease up (%s); a standby takes over when it lapses", error)

    # -- the election -----------------------------------------------------------------------------------------

    def _elect(self) -> None:
        backoff = Backoff(base=self._tick, cap=5.0)
        while True:
            try:
                self.elect_once()
            except RedisError as error:
                self._redis_failed(error)
                if self._token is not None and time.monotonic() - self._renewed_at >= self._lease_ttl:
                    self._step_down("Redis unreachable for longer than the lease")
                gevent.sleep(backoff.next())
                continue
            if self._outage:
                log.info("relay: Redis answers again")
                self._outage = False
            self.stats.redis_connected = True
            backoff.reset()
            gevent.sleep(self._tick)

    def elect_once(self) -> None:
        """One tick of the election: report readiness; renew, or hand over, or try to take the lease. Raises
        ``RedisError`` when Redis does not answer."""
        ready = self._symbols_in_step()
        others, lease = self._report(keys=[keys.NODES, keys.LEASE],
                                     args=[self.name, ready, int(self._lease_ttl * 2000)])
        if lease:
            self.stats.epoch = max(self.stats.epoch, int(lease.split(b" ", 1)[0]))
        token = self._token
        if token is not None:
            sent = time.monotonic()  # the lease runs from when Redis renews it, which is after this
            if not self._renew(keys=[keys.LEASE], args=[token, int(self._lease_ttl * 1000)]):
                self._step_down("the lease was lost (it lapsed, and another node took it)")
                return
            self.stats.renewals += 1
            self._renewed_at = sent
            if ready == 0 and others > 0:
                self._step_down("no symbol is in step here and a standby has some: handing over")
                self.stats.handovers += 1
                self._release(keys=[keys.LEASE], args=[token])
            return
        if ready == 0 and others > 0:
            return  # a standby with something in step is the better leader
        started = time.monotonic()
        epoch = int(self._acquire(keys=[keys.LEASE, keys.EPOCH],
                                  args=[self.name, int(self._lease_ttl * 1000), self.stats.epoch]))
        if epoch:
            self._lead(epoch, started)

    def _lead(self, epoch: int, renewed_at: float) -> None:
        self._token = f"{epoch} {self.name}"
        self._renewed_at = renewed_at
        self._sequence = itertools.count(1)
        self.stats.epoch = epoch
        self.stats.leader = True
        self.stats.takeovers += 1
        self._leading.set()
        log.warning("relay: this book node leads, epoch %d (%d of %d symbols in step)", epoch,
                    self._symbols_in_step(), len(self._books.symbols))

    def _step_down(self, reason: str) -> None:
        if self._token is None:
            return
        log.warning("relay: no longer the leader of epoch %s: %s", self._token.split()[0], reason)
        self._token = None
        self.stats.leader = False
        self._leading.clear()

    def _redis_failed(self, error: RedisError) -> None:
        self.stats.redis_errors += 1
        self.stats.redis_connected = False
        if not self._outage:
            self._outage = True
            log.warning("relay: Redis at %s unreachable (%s); the book is still served here, retrying",
                        redacted(self.url), error)

    # -- publishing -------------------------------------------------------------------------------------------

    def _publish_while_leader(self) -> None:
        backoff = Backoff(base=self._tick, cap=5.0)
        while True:
            self._leading.wait()
            token = self._token
            if token is None:
                continue
            try:
                self._publish_epoch(token)
                backoff.reset()
            except RedisError as error:
                self._redis_failed(error)
                gevent.sleep(backoff.next())

    def _publish_epoch(self, token: str) -> None:
        """Publish every symbol, then every change, until this lease is no longer held."""
        epoch = int(token.split()[0])
        books = self._books
        first = True
        for changes in books.follow(lambda: self._token == token):
            symbols = dict.fromkeys(symbol for _, symbol in changes)
            pairs: list[bytes | str] = ["", self._heartbeat_envelope(epoch)] if first else []
            for symbol in symbols:  # the catalogue first: an edge learns the symbols before their books
                pairs += [symbol, envelope.update(epoch, next(self._sequence), self.name, books.state(symbol),
                                                  books.summary(symbol))]
            if not self._send(token, pairs, replace=first):
                return
            self.stats.published["update"] += len(symbols)
            self.stats.published["heartbeat"] += first
            first = False

    def _heartbeat(self) -> None:
        while True:
            gevent.sleep(HEARTBEAT_INTERVAL)
            token = self._token
            if token is None:
                continue
            try:
                if self._send(token, ["", self._heartbeat_envelope(int(token.split()[0]))], replace=False):
                    self.stats.published["heartbeat"] += 1
            except RedisError as error:
                self._redis_failed(error)

    def _heartbeat_envelope(self, epoch: int) -> bytes:
        return envelope.heartbeat(epoch, next(self._sequence), self.name, self._books.symbols, self._books.depth)

    def _send(self, token: str, pairs: list[bytes | str], replace: bool) -> bool:
        """One fenced write; False (and stepping down) if the lease is no longer this token's."""
        written = self._publish(keys=[keys.LEASE, keys.LATEST, keys.CATALOG],
                                args=[token, keys.CHANNEL, keys.STORED_TTL_MS, int(CATALOG_TTL * 1000),
                                      "1" if replace else "0", *pairs])
        if not written and self._token == token:
            self._step_down("a write was refused: the lease is another node's")
        return bool(written)
