"""An edge (``bin/run-edge``): serves the leader's books from Redis, holding no exchange connection.

It serves what a book node serves (``BookSummary`` for the default symbol, ``OrderbookStreams.Book`` and
``Symbols``, health and reflection) with the same latest-value streams and the same summary bytes, which it
passes on untouched from the envelope (serialized once, by the leader). It learns the symbols and the depth from
the leader's heartbeat. Any number of edges may run; they keep no state a client depends on, so a client may
use any of them. Whatever it reads from Redis is checked before it is served (:mod:`orderbook.relay.source`), and
with ``--relay-key`` only envelopes signed with the deployment's secret are taken.

Health is SERVING while Redis answers, the leader was heard within
:data:`~orderbook.relay.timing.SOURCE_TIMEOUT`, and the default symbol has a venue in step. When the leader has not
been heard for that long (Redis unreachable or stopped, or no book node leading) every stream ends with
UNAVAILABLE and new ones are refused, so clients move to a healthy edge: an edge never serves a book it cannot
vouch for. It serves again by itself as soon as the leader is heard.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import gevent
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric

from orderbook.config import EdgeConfig
from orderbook.listeners import Listening
from orderbook.relay.keys import Keys
from orderbook.relay.metrics import EdgeStats
from orderbook.relay.redis_url import redacted
from orderbook.relay.source import RedisSource
from orderbook.relay.timing import SOURCE_TIMEOUT, TICK
from orderbook.serving.grpc_server import GrpcServer, TlsFiles
from orderbook.serving.stats import serving_families
from orderbook.serving.symbols import ServedSymbols

log = logging.getLogger(__name__)


class _Families:
    """A collector of metric families made at scrape time."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self.collect = collect


class Edge(Listening):
    def __init__(self, config: EdgeConfig) -> None:
        super().__init__()
        self.config = config
        self.served = ServedSymbols((), 1)  # the leader's symbols and depth arrive with its first heartbeat
        self.stats = EdgeStats()
        tls = TlsFiles(Path(config.tls_cert), Path(config.tls_key)) if config.tls_cert and config.tls_key else None
        self.grpc = GrpcServer(self.served, config.grpc_addr, max_streams=config.max_streams, tls=tls)
        self.source = RedisSource(config.source, self.served, self.stats, on_change=self._check,
                                  keys=Keys(config.relay_prefix), key=config.relay_key)
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
        self.tasks.task("edge_source", self.source.run)
        self.tasks.task("edge_watch", self._watch)

    def _watch(self) -> None:
        while True:
            gevent.sleep(TICK)
            self._check()

    def _check(self) -> None:
        """Suspend or resume the streams, and set health, from how recently the leader was heard."""
        heard = self.source.last_heard
        fresh = heard is not None and time.monotonic() - heard < SOURCE_TIMEOUT
        served = self.served
        if fresh and served.unavailable is not None and served.symbols:
            served.resume()
            log.info("edge: serving %d symbols from the leader of epoch %d", len(served.symbols), self.stats.epoch)
        elif not fresh and served.unavailable is None:
            reason = f"the leader has not been heard for {SOURCE_TIMEOUT:g} s"
            served.suspend(reason)
            self.stats.sources_lost += 1
            log.warning("edge: %s (Redis %s); ending every stream with UNAVAILABLE until it is",
                        reason, "answers" if self.source.connected else "unreachable")
        up = fresh and self.source.connected and served.unavailable is None and self.tasks.healthy
        self.stats.serving = up
        serving = up and bool(served.state(served.default).exchanges_in_step)
        if serving != self._serving:
            self._serving = serving
            self.grpc.set_serving(serving)

    def _families(self) -> list[Metric]:
        stats = self.grpc.stats()
        greenlets = GaugeMetricFamily("orderbook_greenlets", "Greenlets alive that the edge started, gRPC calls "
                                      "included")
        greenlets.add_metric([], len(self.tasks) + stats.active_calls)
        return [*serving_families(stats, self.served.published_total), greenlets, *self.stats.families(),
                *self.tasks.families()]
