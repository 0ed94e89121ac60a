"""A book node's side of the relay (``bin/run-server --publish URL``): take part in the election, and publish every
symbol's summary and state while leader.

Every book node of a deployment follows the same symbols and keeps its books in step; one of them, the leader,
holds the lease (:mod:`orderbook.relay.keys`) and publishes. Each :data:`~orderbook.relay.timing.TICK` a node
reports how many of its symbols are in step on some venue; the leader renews its lease, and a standby tries to
take it (it succeeds once the lease has lapsed: the leader died, hung, or lost Redis). Two rules keep the better
node in charge: a standby with nothing in step does not take the lease while another node has something in step,
and a leader with nothing in step gives the lease up when a standby has. A node that stops cleanly gives its lease
up at once, so a restart costs no more than a tick.

Epochs only grow, also through a Redis failover that lost the last writes (a promoted replica without the lease
or the epoch counter): a node takes the next epoch after the highest of the counter and what it has seen, and each
report carries the highest it has seen, so that the nodes of a shard learn it from each other: one that missed an
epoch (it could not reach Redis then) still takes a newer one.

One deployment per key space: a node whose catalogue (symbols, in order, and depth) is not the live leader's
refuses to join, from its first tick on, and also when such a leader appears later: it never takes the lease, and
calls ``on_conflict`` with one line naming the URL and both catalogues (the process exits 2). Each node's report
carries its catalogue's fingerprint, so the nodes that stay also see one that was refused, and count it
(``orderbook_relay_rejected_total{reason="other_deployment"}``) for an alert. Changing the symbols of a running
deployment therefore means stopping all its book nodes first, or starting the new one on another
``--relay-prefix``.

Shards (``--shard``): the nodes of each shard elect their own leader on their shard's keys, as above, and report
their shard in the deployment's list of shards at every tick. Each symbol is one shard's: a node that finds another
live shard, registered before its own, whose leader serves some of its symbols refuses to join in the same way
(one line naming its shard, the other and the symbols both have), before it could take its own shard's lease. A
node that stops cleanly also takes its entry out, and its shard's when it was the shard's last live node.

What is read from Redis is input (:mod:`orderbook.relay.rejections`): a lease that is not ``"<epoch> <node>"`` is
held by someone unknown until it expires, never taken over before; an epoch counter that is not an epoch is never
led on; no epoch above :data:`~orderbook.relay.keys.MAX_EPOCH` is ever computed or believed.

While leader, :class:`BookNode` follows the served books (:meth:`ServedSymbols.follow`, latest value only: a slow
Redis skips summaries, never queues them) and publishes each batch of changed symbols with one fenced script call:
first every symbol and the catalogue (a new leader replaces what the last one stored), then each change, and a
heartbeat every :data:`~orderbook.relay.timing.HEARTBEAT_INTERVAL`, each envelope signed when the deployment has a
key (``--relay-key``). The node's own gRPC clients are served as before whatever happens to Redis: when it is
unreachable the node retries with backoff and logs it once per outage.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Sequence

import gevent
import gevent.event
from redis.exceptions import RedisError

from orderbook.backoff import Backoff
from orderbook.relay import envelope
from orderbook.relay.fenced import FencedPublish
from orderbook.relay.keys import (ACQUIRE, DEFAULT_KEYS, LEAVE, MAX_EPOCH, MAX_FOREIGN, MAX_LEASE, MAX_SHARDS, RELEASE,
                                  RENEW, REPORT, SHARD, SHARD_TTL_MS, BadLease, Keys, Lease, fingerprint, read_lease)
from orderbook.relay.metrics import NodeStats
from orderbook.relay.redis_url import connect, getrange, redacted
from orderbook.relay.rejections import Rejections
from orderbook.relay.timing import HEARTBEAT_INTERVAL, LEASE_TTL, REDIS_RETRY_CAP, REDIS_TIMEOUT, TICK
from orderbook.serving.symbols import ServedSymbols

log = logging.getLogger(__name__)

SHOWN_SYMBOLS = 20
"""Symbols of a catalogue named in the refusal line; the rest are counted."""


class OtherDeployment(Exception):
    """Another deployment leads on this node's Redis keys: a configuration error; the message is the one line the
    process ends with."""


def node_name() -> str:
    """This process, unique in the deployment: host, pid and a random part (a pid can be reused). Printable and
    without a space, as a lease's node must be."""
    host = re.sub(r"[^\x21-\x7e]", "_", socket.gethostname())[:200] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(3)}"


def _catalogue(symbols: Sequence[str], depth: int) -> str:
    shown = ",".join(symbols[:SHOWN_SYMBOLS])
    more = f",... ({len(symbols)} symbols)" if len(symbols) > SHOWN_SYMBOLS else ""
    return f"--symbol {shown}{more} --depth {depth}"


class BookNode:
    """Elects and publishes for one book process; see the module docstring."""

    def __init__(self, url: str, served: ServedSymbols, symbols_in_step: Callable[[], int],
                 task: Callable[..., gevent.Greenlet], *, on_conflict: Callable[[OtherDeployment], None],
                 keys: Keys = DEFAULT_KEYS, key: bytes | None = None, lease_ttl: float = LEASE_TTL,
                 tick: float = TICK) -> None:
        """``symbols_in_step``: how many symbols have a venue in step now (the handover rule's measure). ``task``:
        starts a long-lived task, ``task(name, function, *args)`` (a :meth:`Supervisor.task`). ``on_conflict``:
        called once if another deployment leads on these keys (the process should end, saying so). ``key``:
        the deployment's ``--relay-key``, signing every envelope."""
        self.url = url
        self.name = node_name()
        self.stats = NodeStats()
        self.keys = keys
        self._served = served
        self._symbols_in_step = symbols_in_step
        self._task = task
        self._on_conflict = on_conflict
        self._key = key
        self._fingerprint = fingerprint(served.symbols, served.depth)
        self._lease_ttl, self._tick = lease_ttl, tick
        self._redis = connect(url, REDIS_TIMEOUT, f"orderbook-node-{os.getpid()}")
        self._acquire = self._redis.register_script(ACQUIRE)
        self._renew = self._redis.register_script(RENEW)
        self._release = self._redis.register_script(RELEASE)
        self._publish = FencedPublish(self._redis, keys)
        self._report = self._redis.register_script(REPORT)
        self._leave = self._redis.register_script(LEAVE)
        self._rejections = Rejections(self.stats.rejected, log)
        self._token: str | None = None
        """``"<epoch> <node>"`` while leader: the lease's value, checked by every write."""
        self._renewed_at = 0.0
        self._leading = gevent.event.Event()
        self._sequence = itertools.count(1)
        self._outage = False
        self._checked: Lease | None = None
        """The last leader whose catalogue was found to be this node's own."""
        self._foreign: set[bytes] = set()
        """The nodes of another catalogue in the last report."""
        self.refused: str | None = None
        """Why this node refused to join (another deployment leads on its keys); it never leads then."""

    @property
    def leader(self) -> bool:
        return self._token is not None

    def start(self) -> None:
        log.info("relay: publishing through %s, key prefix %s, as book node %s (lease %.1f s%s)", redacted(self.url),
                 self.keys.prefix, self.name, self._lease_ttl, ", signed" if self._key else "")
        self._task("relay_election", self._elect)
        self._task("relay_publisher", self._publish_while_leader)
        self._task("relay_heartbeat", self._heartbeat)

    def stop(self) -> None:
        """Give the lease up, if held, so that a standby takes over at once, and leave the shard's nodes."""
        token = self._token
        self._step_down("stopping")
        try:
            if token is not None:
                self._release(keys=[self.keys.lease], args=[token])
                log.info("relay: lease of epoch %s given up", token.split()[0])
            # One that refused to join stays listed until its entry expires: the nodes it found count it.
            if self.refused is None and self._leave(keys=[self.keys.nodes, self.keys.shards],
                                                    args=[self.name, self.keys.shard]):
                log.info("relay: the last book node of shard %s left: the shard is gone", self.keys.shard)
        except RedisError as error:
            log.warning("relay: could not give the lease up or leave (%s); a standby takes over when it lapses",
                        error)

    # -- the election -----------------------------------------------------------------------------------------

    def _elect(self) -> None:
        """Until this node refuses to join (then the task has finished)."""
        backoff = Backoff(base=self._tick, cap=REDIS_RETRY_CAP)
        while self.refused is None:
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
        """One tick of the election: report readiness; renew, or hand over, or check the leader's catalogue, or try
        to take the lease. Raises ``RedisError`` when Redis does not answer."""
        if self.refused is not None:
            return
        ready = self._symbols_in_step()
        keys = self.keys
        others, lease, foreign, shards, highest = self._report(
            keys=[keys.nodes, keys.lease, keys.shards],
            args=[self.name, ready, int(self._lease_ttl * 2000), self._fingerprint, MAX_LEASE, MAX_FOREIGN,
                  keys.shard, SHARD_TTL_MS, MAX_SHARDS, self.stats.epoch, MAX_EPOCH])
        self.stats.epoch = max(self.stats.epoch, int(highest))  # another node's, which this one may have missed
        self._check_shards(shards)
        if self.refused is not None:
            return
        self._take_part(ready, others, lease)
        if self.refused is None:  # a node that refuses counts itself, not the deployment it found
            self._count_foreign(set(foreign))

    def _take_part(self, ready: int, others: int, lease: bytes | None) -> None:
        """Renew, or hand over, or check the leader's catalogue, or try to take the lease."""
        keys = self.keys
        holder = None if lease is None else self._holder(lease)
        if holder is not None:
            self.stats.epoch = max(self.stats.epoch, holder.epoch)
        token = self._token
        if token is not None:
            sent = time.monotonic()  # the lease runs from when Redis renews it, which is after this
            if not self._renew(keys=[keys.lease], args=[token, int(self._lease_ttl * 1000)]):
                self._step_down("the lease was lost (it lapsed, and another node took it)")
                return
            self.stats.renewals += 1
            self._renewed_at = sent
            if ready == 0 and others > 0:
                self._step_down("no symbol is in step here and a standby has some: handing over")
                self.stats.handovers += 1
                self._release(keys=[keys.lease], args=[token])
            return
        if lease is not None:
            if holder is not None:
                self._check_catalogue(holder)
            return  # held: by a leader, or by someone unknown until it expires
        if ready == 0 and others > 0:
            return  # a standby with something in step is the better leader
        started = time.monotonic()
        epoch = int(self._acquire(keys=[keys.lease, keys.epoch],
                                  args=[self.name, int(self._lease_ttl * 1000), self.stats.epoch, MAX_EPOCH]))
        if 1 <= epoch <= MAX_EPOCH:
            self._rejections.settled("bad_epoch_counter")
            self._lead(epoch, started)
        elif epoch != 0:
            counter = getrange(self._redis, keys.epoch, 0, 63)
            self._rejections.reject("bad_epoch_counter", "relay: the epoch counter %s holds %r (after epoch %d here), "
                                    "not an epoch this node can go on from: no lease taken", keys.epoch, counter,
                                    self.stats.epoch, value=counter)

    def _holder(self, lease: bytes) -> Lease | None:
        """Who holds ``lease``, or None if no book node could have written it (counted once per value)."""
        try:
            holder = read_lease(lease)
        except BadLease as error:
            self._rejections.reject("bad_lease", "relay: the lease %s is held by someone unknown until it expires: %s",
                                    self.keys.lease, error, value=lease)
            return None
        self._rejections.settled("bad_lease")
        return holder

    def _check_catalogue(self, holder: Lease) -> None:
        """Refuse to join if the leader ``holder`` serves another catalogue. Read once a leader: until its catalogue
        is stored (the first write after it took the lease), it is read again at the next tick."""
        if holder == self._checked:
            return
        beat = self._stored_catalogue(self.keys)
        if beat is None or (beat.epoch, beat.node) != (holder.epoch, holder.node):
            return  # not the holder's (yet)
        self._checked = holder
        served = self._served
        if (beat.symbols, beat.depth) != (served.symbols, served.depth):
            self._refuse(f"--publish {redacted(self.url)}, key prefix {self.keys.prefix}, shard {self.keys.shard}: "
                         f"another deployment leads there (book node {beat.node}, "
                         f"{_catalogue(beat.symbols, beat.depth)}); this node has "
                         f"{_catalogue(served.symbols, served.depth)}: one deployment per key space, so give this one "
                         "its own --relay-prefix (or Redis database), or stop every book node of the other before "
                         "changing its symbols")

    def _check_shards(self, shards: list[bytes]) -> None:
        """Refuse to join if another live shard, registered before this one (or at the same moment, with a name
        before its own), has a leader serving some of this node's symbols. ``shards``: (name, registered ms) pairs,
        this node's own shard first."""
        mine = (int(shards[1]), self.keys.shard) if len(shards) >= 2 else None
        for name_bytes, since in zip(shards[2::2], shards[3::2]):
            name = name_bytes.decode("ascii", errors="replace")
            if not SHARD.fullmatch(name) or not since.isdigit():
                self._rejections.reject("bad_shard", "relay: the shard list %s names %r, no shard's name",
                                        self.keys.shards, name_bytes[:80], value=name_bytes)
                continue
            if mine is None or (int(since), name) > mine:
                continue  # registered after this one: if the two overlap, that one refuses
            beat = self._stored_catalogue(self.keys.of_shard(name))
            if beat is None:
                continue
            theirs = set(beat.symbols)
            both = [symbol for symbol in self._served.symbols if symbol in theirs]
            if both:
                shown = ",".join(both[:SHOWN_SYMBOLS]) + (f",... ({len(both)} symbols)" if len(both) > SHOWN_SYMBOLS
                                                          else "")
                self._refuse(f"--shard {self.keys.shard}: the symbols {shown} are also shard {name}'s (book node "
                             f"{beat.node}, on {redacted(self.url)}, key prefix {self.keys.prefix}): each symbol "
                             "is one shard's, so give this shard other symbols, or stop shard "
                             f"{name} first", reason="shard_overlap")
                return

    def _stored_catalogue(self, keys: Keys) -> envelope.Heartbeat | None:
        """The catalogue the leader of ``keys``' shard stored lately (None if there is none, or it is refused)."""
        stored = getrange(self._redis, keys.catalog, 0, envelope.MAX_ENVELOPE)
        if not stored:
            return None
        try:
            beat = envelope.read(stored, self._key)
        except envelope.BadEnvelope as error:
            self._rejections.reject(error.reason, "relay: the stored catalogue %s refused (%s): %s", keys.catalog,
                                    error.reason, error, value=stored)
            return None
        return beat if isinstance(beat, envelope.Heartbeat) else None

    def _refuse(self, message: str, reason: str = "other_deployment") -> None:
        self.refused = message
        self._rejections.reject(reason, "relay: refusing to join: %s", message)
        self._on_conflict(OtherDeployment(message))

    def _count_foreign(self, foreign: set[bytes]) -> None:
        """Count each node of another catalogue once, as it first appears in the reports."""
        for name in foreign - self._foreign:
            self._rejections.reject("other_deployment", "relay: book node %r serves another catalogue on the key "
                                    "space %s: another deployment (it refuses to join, and exits)", name[:80],
                                    self.keys.prefix)
        self._foreign = foreign

    def _lead(self, epoch: int, renewed_at: float) -> None:
        self._token = Lease(epoch, self.name).token
        self._renewed_at = renewed_at
        self._sequence = itertools.count(1)
        self.stats.epoch = epoch
        self.stats.leader = True
        self.stats.takeovers += 1
        self._leading.set()
        log.warning("relay: this book node leads, epoch %d (%d of %d symbols in step)", epoch,
                    self._symbols_in_step(), len(self._served.symbols))

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
        backoff = Backoff(base=self._tick, cap=REDIS_RETRY_CAP)
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
        served = self._served
        first = True
        for changes in served.follow(lambda: self._token == token):
            symbols = dict.fromkeys(symbol for _, symbol in changes)
            pairs: list[bytes | str] = ["", self._heartbeat_envelope(epoch)] if first else []
            for symbol in symbols:  # the catalogue first: an edge learns the symbols before their books
                pairs += [symbol, envelope.update(epoch, next(self._sequence), self.name, served.state(symbol),
                                                  served.summary(symbol), self._key)]
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
        return envelope.heartbeat(epoch, next(self._sequence), self.name, self._served.symbols, self._served.depth,
                                  self._key)

    def _send(self, token: str, pairs: list[bytes | str], replace: bool) -> bool:
        """One fenced write; False (and stepping down) if the lease is no longer this token's."""
        written = self._publish(token, replace, pairs)
        if not written and self._token == token:
            self._step_down("a write was refused: the lease is another node's")
        return bool(written)
