"""An edge (``bin/run-edge``): serves the leaders' books from Redis, holding no exchange connection.

It serves what a book node serves (``BookSummary`` for the default symbol, ``OrderbookStreams.Book`` and
``Symbols``, health and reflection) with the same latest-value streams and the same summary bytes, which it
passes on untouched from the envelope (serialized once, by the leader). It serves every shard of the deployment
(``--shard`` on the book nodes): it reads the list of shards every :data:`LIST_INTERVAL`, follows each shard's
leader with a source of its own (:mod:`orderbook.relay.source`) into that shard's books, and serves them all as one
(:mod:`orderbook.serving.shards`): each shard's symbols and depth come from its leader's heartbeat, ``Book`` goes to
the shard of its symbol, and ``BookSummary`` serves ``--default-symbol``, or else the default symbol of the first
shard by name. A shard that appears is served from then on. Any number of edges may run; they keep no state a
client depends on, so a client may use any of them. Whatever it reads from Redis is checked before it is served,
and with ``--relay-key`` only envelopes signed with the deployment's secret are taken.

Each shard on its own: when a shard's leader has not been heard for :data:`~orderbook.relay.timing.SOURCE_TIMEOUT`
(Redis unreachable or stopped, or none of its book nodes leading), that shard's streams end with UNAVAILABLE and
new ones are refused, and ``Symbols`` shows its symbols with no venue in step, so that clients move to a healthy
edge: an edge never serves a book it cannot vouch for. The other shards' streams go on. A shard is served again by
itself as soon as its leader is heard; one that has left the list (its last book node stopped cleanly, or none has
reported for a minute) is no longer served, nor listed, once it has been silent that long.

Health is SERVING while Redis answers, the default symbol's shard's leader was heard within the source timeout, and
the default symbol has a venue in step.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import gevent
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from redis.exceptions import RedisError

from orderbook.config import EdgeConfig
from orderbook.listeners import Listening
from orderbook.relay.keys import LIST_SHARDS, MAX_SHARDS, SHARD, Keys
from orderbook.relay.metrics import EdgeStats, merged, shard_list_families
from orderbook.relay.redis_url import connect, redacted
from orderbook.relay.rejections import Rejections
from orderbook.relay.source import RedisSource
from orderbook.relay.timing import REDIS_TIMEOUT, SOURCE_TIMEOUT, TICK
from orderbook.serving.grpc_server import GrpcServer, TlsFiles
from orderbook.serving.shards import ShardedSymbols
from orderbook.serving.stats import serving_families
from orderbook.serving.symbols import ServedSymbols

log = logging.getLogger(__name__)

LIST_INTERVAL = 1.0
"""Seconds between two readings of the list of shards: a new shard is served within it (and its first catalogue)."""


class _Families:
    """A collector of metric families made at scrape time."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self.collect = collect


@dataclass(slots=True)
class _Shard:
    """One shard as an edge serves it: its books, its figures, and the source that feeds them."""

    served: ServedSymbols
    stats: EdgeStats
    source: RedisSource
    task: gevent.Greenlet

    def fresh(self, now: float) -> bool:
        """Whether its leader was heard within the source timeout."""
        heard = self.source.last_heard
        return heard is not None and now - heard < SOURCE_TIMEOUT


class Edge(Listening):
    def __init__(self, config: EdgeConfig) -> None:
        super().__init__()
        self.config = config
        self.books = ShardedSymbols(config.default_symbol)
        self.shards: dict[str, _Shard] = {}
        tls = TlsFiles(Path(config.tls_cert), Path(config.tls_key)) if config.tls_cert and config.tls_key else None
        self.grpc = GrpcServer(self.books, config.grpc_addr, max_streams=config.max_streams, tls=tls)
        self._keys = Keys(config.relay_prefix)
        self._redis = connect(config.source, REDIS_TIMEOUT, f"orderbook-edge-{os.getpid()}")
        self._list_shards = self._redis.register_script(LIST_SHARDS)
        self._listed: set[str] = set()
        """The shards in the list as last read (kept while it cannot be read)."""
        self._rejected: Counter[str] = Counter()
        self._rejections = Rejections(self._rejected, log)
        self._outage = False
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.registry.register(_Families(self._families))
        self._serving = False
        self.tasks.on_health = self._check

    def start(self) -> None:
        """Bind the listeners (errors surface here as :class:`ConfigError`) and start following Redis."""
        self.start_listening(self.config.metrics_addr, self.registry, self.config.setting)
        log.info("edge: serving the books published through %s, key prefix %s%s", redacted(self.config.source),
                 self.config.relay_prefix, ", signed envelopes only" if self.config.relay_key else "")
        self.tasks.task("edge_shards", self._follow_list)
        self.tasks.task("edge_watch", self._watch)

    # -- the shards ----------------------------------------------------------------------------------------------

    def _follow_list(self) -> None:
        while True:
            try:
                names = self._list_shards(keys=[self._keys.shards], args=[MAX_SHARDS])
            except RedisError as error:
                if not self._outage:
                    self._outage = True
                    log.warning("edge: the list of shards cannot be read from Redis at %s (%s); retrying",
                                redacted(self.config.source), error)
            else:
                self._outage = False
                self._listed = set(self._shard_names(names))
                for name in sorted(self._listed - set(self.shards)):
                    self._add(name)
            gevent.sleep(LIST_INTERVAL)

    def _shard_names(self, names: list[bytes]) -> Iterable[str]:
        for raw in names:
            name = raw.decode("ascii", errors="replace")
            if SHARD.fullmatch(name):
                yield name
            else:
                self._rejections.reject("bad_shard", "edge: the list of shards %s names %r, no shard's name",
                                        self._keys.shards, raw[:80], value=raw)

    def _add(self, name: str) -> None:
        served, stats = ServedSymbols((), 1), EdgeStats()  # its leader's symbols arrive with its first heartbeat
        source = RedisSource(self.config.source, served, stats, on_change=self._check,
                             keys=self._keys.of_shard(name), key=self.config.relay_key)
        task = self.tasks.task(f"edge_source_{name}", source.run, needed=False)
        self.shards[name] = _Shard(served, stats, source, task)
        self.books.add(name, served)
        log.info("edge: following shard %s", name)

    def _drop_gone(self, now: float) -> None:
        """Stop serving the shards that left the list and have been silent for the source timeout."""
        for name in [name for name, shard in self.shards.items() if name not in self._listed and not shard.fresh(now)]:
            shard = self.shards.pop(name)
            shard.task.kill()
            shard.source.close()
            self.books.remove(name)
            log.info("edge: shard %s is gone (no book node of it is left): its %d symbols are no longer served",
                     name, len(shard.served.symbols))

    # -- serving -------------------------------------------------------------------------------------------------

    def _watch(self) -> None:
        while True:
            gevent.sleep(TICK)
            self._drop_gone(time.monotonic())
            self._check()

    def _check(self) -> None:
        """Suspend or resume each shard's streams from how recently its leader was heard, and set health."""
        now = time.monotonic()
        for name, shard in self.shards.items():
            served, fresh = shard.served, shard.fresh(now)
            if fresh and served.unavailable is not None and served.symbols:
                served.resume()
                log.info("edge: serving %d symbols of shard %s from the leader of epoch %d", len(served.symbols),
                         name, shard.stats.epoch)
            elif not fresh and served.unavailable is None:
                reason = f"the leader of shard {name} has not been heard for {SOURCE_TIMEOUT:g} s"
                served.suspend(reason)
                shard.stats.sources_lost += 1
                log.warning("edge: %s (Redis %s); ending its streams with UNAVAILABLE until it is", reason,
                            "answers" if shard.source.connected else "unreachable")
            shard.stats.serving = fresh and shard.source.connected and served.unavailable is None
        default = self.books.default
        served_default = self.books.owner(default)
        owner = next((shard for shard in self.shards.values() if shard.served is served_default), None)
        serving = (owner is not None and owner.stats.serving and self.tasks.healthy
                   and bool(self.books.state(default).exchanges_in_step))
        if serving != self._serving:
            self._serving = serving
            self.grpc.set_serving(serving)

    def _families(self) -> list[Metric]:
        stats = self.grpc.stats()
        greenlets = GaugeMetricFamily("orderbook_greenlets", "Greenlets alive that the edge started, gRPC calls "
                                      "included")
        greenlets.add_metric([], len(self.tasks) + stats.active_calls)
        shards = GaugeMetricFamily("orderbook_relay_shards", "Shards the edge serves (those in the deployment's list, "
                                   "and those that left it but were heard within the source timeout)")
        shards.add_metric([], len(self.shards))
        relay = merged([shard_list_families(self._rejected),
                        *(shard.stats.families(name) for name, shard in self.shards.items())])
        return [*serving_families(stats, self.books.published_total), greenlets, shards, *relay,
                *self.tasks.families()]
