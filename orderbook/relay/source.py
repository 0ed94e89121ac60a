"""An edge's source: the leader's envelopes, read from Redis into the edge's :class:`ServedSymbols`.

A (re)connection subscribes to the channel first and, once Redis has confirmed the subscription, reads the stored
catalogue and then every symbol's latest: a message published after those reads arrives on the channel, and one
published before is in what was read, so nothing falls between. Then each message is taken as it comes, the
streams given a turn after every :data:`~orderbook.relay.timing.SOURCE_TURN` of work, so that a flood on the channel
holds them up no longer than that.

Everything read is input, checked before it is applied (:func:`orderbook.relay.envelope.read`); a value refused is
counted by reason, logged and ignored (:mod:`orderbook.relay.rejections`), and nothing read can raise out of the
loop but Redis failing, which reconnects.

* An envelope is applied only if it is from the epoch followed (the newest seen: an older one is a deposed
  leader's, dropped), no more than :data:`MAX_SEQUENCE_JUMP` past the newest sequence of that epoch, and newer than
  what its symbol already has (the channel may bring one the stored read already had).
* A heartbeat that would change the catalogue (the symbols or the depth: the streams of a symbol that goes, or of
  every symbol when the depth changes, end) is applied only if it comes from the lease's holder, as the lease itself
  says, not the envelope: the lease is read then, at most once a tick however many such heartbeats come.
* A leader followed but not heard for :data:`~orderbook.relay.timing.FOLLOWED_SILENCE` (under the source timeout)
  is given up for the newest one that is heard, and every symbol's stored latest is read again: a message from a
  forged future epoch costs at most that long, and no client its stream.

A summary equal to the one served is not published again (a new leader's first write repeats every symbol's), so
clients see only real changes. A catalogue that changes the symbols (the first one an edge hears, or a new leader's
different one) makes the edge read the stored values again: an update that came before its symbol was known is not
lost until the symbol's next change.

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
from orderbook.relay import envelope
from orderbook.relay.envelope import Heartbeat, Update
from orderbook.relay.keys import DEFAULT_KEYS, MAX_LEASE, READ_LATEST, Keys, Lease
from orderbook.relay.metrics import EdgeStats
from orderbook.relay.redis_url import connect, getrange, redacted
from orderbook.relay.rejections import Rejections
from orderbook.relay.subscription import Subscription
from orderbook.relay.timing import FOLLOWED_SILENCE, REDIS_RETRY_CAP, REDIS_TIMEOUT, SOURCE_TURN, TICK
from orderbook.serving.symbols import ServedSymbols

log = logging.getLogger(__name__)

MAX_SEQUENCE_JUMP = 10**6
"""How far past the newest sequence of its epoch an envelope may be. A leader numbers every envelope of its epoch in
one sequence, heartbeats included (two a second), so from one envelope an edge takes to the next it moves by what
the leader published meanwhile, never by a million; one taken that far ahead would freeze its symbol (every real
update after it looks older). The bound is from the epoch's newest, not the symbol's own last: a quiet symbol among
busy ones may see the sequence move by millions between two of its updates."""
RAW_EXCERPT = 120
"""Characters of a refused value's bytes shown in the log."""


class RedisSource:
    """Follows the leader through Redis into ``books``; ``on_change`` runs after each envelope applied."""

    def __init__(self, url: str, served: ServedSymbols, stats: EdgeStats, on_change: Callable[[], None], *,
                 keys: Keys = DEFAULT_KEYS, key: bytes | None = None) -> None:
        """``keys``: the deployment's (``--relay-prefix``); ``key``: its ``--relay-key``, without which no envelope
        is taken."""
        self.url = url
        self.connected = False
        self.last_heard: float | None = None
        """``time.monotonic()`` when the leader was last heard: a message, or a catalogue found stored."""
        self._served = served
        self._stats = stats
        self._on_change = on_change
        self._keys = keys
        self._key = key
        self._redis = connect(url, REDIS_TIMEOUT, f"orderbook-edge-{os.getpid()}")
        self._read_latest = self._redis.register_script(READ_LATEST)
        self._rejections = Rejections(stats.rejected, log)
        self._symbols = frozenset(served.symbols)
        self._applied: dict[str, tuple[int, int]] = {}
        """Each symbol's (epoch, sequence) last applied."""
        self._epoch = 0
        """The epoch followed on this connection: the newest seen, unless its leader went silent."""
        self._epoch_heard_at = 0.0
        """``time.monotonic()`` when the epoch followed was last heard from (or first followed)."""
        self._newest = 0
        """The newest sequence taken in the epoch followed: how far the next may jump is counted from it."""
        self._lease = b""
        self._lease_read_at = -float("inf")
        self._turn_taken = 0.0
        self._outage = False
        self.behind = False
        """The stored latest values must be read again (:meth:`catch_up`): a new catalogue, or a new leader
        followed."""

    def close(self) -> None:
        """Drop the connections (once :meth:`run` is no longer running: the shard is no longer served)."""
        self._redis.close()

    def run(self) -> None:
        backoff = Backoff(base=TICK, cap=REDIS_RETRY_CAP)
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
        subscription = Subscription(self._redis, self._keys.channel)
        try:
            subscription.open(REDIS_TIMEOUT)
            catalog = getrange(self._redis, self._keys.catalog, 0, envelope.MAX_ENVELOPE)
            self._connected()
            backoff.reset()
            if catalog and self.take(catalog, live=False):
                self.last_heard = self._stats.last_message_at = time.monotonic()  # a leader wrote it lately
            self.catch_up()
            self._on_change()
            while True:  # nothing to do between messages: the edge judges the leader's silence (Edge._watch)
                data = subscription.next_message(None)
                if data is not None:
                    self.take(data, live=True)
                if self.behind:
                    self.catch_up()
                self._pass_turn()
        finally:
            subscription.close()

    def _connected(self) -> None:
        if self._outage:
            log.info("relay: Redis answers again")
            self._outage = False
        self.connected = self._stats.redis_connected = True
        self._epoch = self._newest = 0
        self._applied.clear()
        self._lease_read_at = -float("inf")

    def _pass_turn(self) -> None:
        """Let the streams run if this has worked for :data:`SOURCE_TURN` since they last did."""
        if time.monotonic() - self._turn_taken >= SOURCE_TURN:
            gevent.sleep(0)
            self._turn_taken = time.monotonic()

    def catch_up(self) -> None:
        """Read every symbol's stored latest again: those whose updates came before the catalogue named them, or
        while the edge followed a leader it then gave up. The newest first, so that each is behind the one before
        and none is taken for a jump."""
        self.behind = False
        symbols = self._served.symbols
        if not symbols:
            return
        found = self._read_latest(keys=[self._keys.latest], args=[envelope.MAX_ENVELOPE, *symbols])
        items: list[Update | Heartbeat] = []
        for symbol, stored in zip(symbols, found):
            if isinstance(stored, int):
                self._rejections.reject(envelope.MALFORMED, "relay: the stored latest of %s refused: %d bytes, more "
                                        "than an envelope has", symbol, stored)
            elif stored is not None and (item := self._read(stored)) is not None:
                items.append(item)
            self._pass_turn()
        for item in sorted(items, key=lambda item: (item.epoch, item.sequence), reverse=True):
            self._apply(item, live=False)
            self._pass_turn()

    def take(self, data: bytes, live: bool) -> bool:
        """Apply one envelope (``live``: just published, from the channel; else read from what Redis stores);
        whether it was taken (applied, or well-formed and from the leader followed, with nothing new)."""
        item = self._read(data)
        return item is not None and self._apply(item, live)

    def _read(self, data: bytes) -> Update | Heartbeat | None:
        try:
            return envelope.read(data, self._key)
        except envelope.BadEnvelope as error:
            self._rejections.reject(error.reason, "relay: an envelope refused (%s): %s: %.*r", error.reason, error,
                                    RAW_EXCERPT, data)
            return None

    def _apply(self, item: Update | Heartbeat, live: bool) -> bool:
        if self._refused(item):
            return False
        stats, now = self._stats, time.monotonic()
        if item.epoch != self._epoch:
            if item.epoch < self._epoch and now - self._epoch_heard_at < FOLLOWED_SILENCE:
                stats.dropped["old_epoch"] += 1
                return False
            self._follow_epoch(item, now)
        elif item.sequence > self._newest + MAX_SEQUENCE_JUMP:
            self._rejections.reject("sequence_jump", "relay: an envelope of epoch %d refused: sequence %d is more than "
                                    "%d past the newest, %d", item.epoch, item.sequence, MAX_SEQUENCE_JUMP,
                                    self._newest)
            return False
        self._newest = max(self._newest, item.sequence)
        self._epoch_heard_at = now
        if live:
            self.last_heard = stats.last_message_at = now
            stats.hop.observe(max(0.0, (time.time_ns() - item.published_ns) / 1e9))
            stats.received[type(item).__name__.lower()] += 1
        if isinstance(item, Heartbeat):
            self._reconfigure(item, live)
            return True
        return self._update(item)

    def _refused(self, item: Update | Heartbeat) -> bool:
        """Whether ``item`` breaks a rule that needs what the edge knows (counted and logged if so)."""
        served = self._served
        if isinstance(item, Heartbeat):
            if (item.symbols, item.depth) != (served.symbols, served.depth) and not self._from_lease_holder(item):
                self._rejections.reject("not_lease_holder", "relay: a catalogue of %d symbols at depth %d refused: "
                                        "its sender, %d %s, does not hold the lease (%r)", len(item.symbols),
                                        item.depth, item.epoch, item.node, self._lease[:RAW_EXCERPT])
                return True
        elif item.levels > served.depth and item.symbol in self._symbols:
            self._rejections.reject("bad_summary", "relay: an update of %s refused: %d levels a side, more than the "
                                    "catalogue's depth %d", item.symbol, item.levels, served.depth)
            return True
        return False

    def _from_lease_holder(self, item: Heartbeat) -> bool:
        """Whether the lease is ``item``'s sender's: read afresh unless it was read within a tick."""
        now = time.monotonic()
        if now - self._lease_read_at >= TICK:
            self._lease = getrange(self._redis, self._keys.lease, 0, MAX_LEASE)
            self._lease_read_at = now
        return self._lease == Lease(item.epoch, item.node).token.encode()

    def _follow_epoch(self, item: Update | Heartbeat, now: float) -> None:
        stats = self._stats
        if item.epoch < self._epoch:
            log.warning("relay: the leader of epoch %d has not been heard for %g s: following the newest heard, "
                        "epoch %d (%s)", self._epoch, now - self._epoch_heard_at, item.epoch, item.node)
            self._applied = {symbol: seen for symbol, seen in self._applied.items() if seen[0] <= item.epoch}
            self.behind = True
        elif item.epoch != stats.epoch:
            log.info("relay: following the leader of epoch %d (%s)", item.epoch, item.node)
        if item.epoch != stats.epoch and stats.epoch:
            stats.leader_changes += 1
        self._epoch = stats.epoch = item.epoch
        self._newest = 0

    def _reconfigure(self, item: Heartbeat, live: bool) -> None:
        if self._served.reconfigure(item.symbols, item.depth):
            self._symbols = frozenset(item.symbols)
            self._stats.symbols = len(item.symbols)
            self._applied = {symbol: seen for symbol, seen in self._applied.items() if symbol in self._symbols}
            self.behind |= live  # what was stored is read after this, on connecting
            log.info("relay: serving %d symbols of shard %s (default %s) at depth %d", len(item.symbols),
                     self._keys.shard, item.symbols[0], item.depth)
        self._on_change()

    def _update(self, item: Update) -> bool:
        symbol, served, stats = item.symbol, self._served, self._stats
        if symbol not in self._symbols:
            stats.dropped["unknown_symbol"] += 1
            return False
        if (item.epoch, item.sequence) <= self._applied.get(symbol, (0, 0)):
            stats.dropped["old_sequence"] += 1
            return True
        served.set_state(item.state)
        self._applied[symbol] = (item.epoch, item.sequence)
        if item.summary and item.summary != served.summary(symbol):
            served.publish_summary(symbol, item.summary)  # published here, now: the hop has its own histogram
        self._on_change()
        return True
