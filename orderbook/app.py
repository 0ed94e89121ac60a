"""The running service: two exchange feeds, the consolidated book, the publisher, gRPC and metrics, wired together.

Assumes a gevent-patched process with grpc's gevent integration initialised (see :mod:`orderbook.server`).
"""

from __future__ import annotations

import logging
import time

import gevent
import gevent.event
import gevent.pool
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from orderbook.config import Config, ConfigError
from orderbook.consolidated import BookPublisher, ConsolidatedBook
from orderbook.exchanges.base import ExchangeError, ExchangeProtocol
from orderbook.exchanges.binance import BinanceProtocol
from orderbook.exchanges.bitstamp import BitstampProtocol
from orderbook.feed import ExchangeFeed, FeedSettings
from orderbook.merge import MergedTop
from orderbook.metrics import Metrics, merged_book_families
from orderbook.metrics_http import MetricsHttpServer
from orderbook.serving.fanout import ServingProcesses, WorkerSettings
from orderbook.serving.grpc_server import GrpcServer, ServerStartError, TlsFiles
from orderbook.serving.stats import serving_families
from orderbook.serving.symbols import SymbolBooks, SymbolState

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FATAL = 2


def exchange_protocols(config: Config) -> list[ExchangeProtocol]:
    return [
        BinanceProtocol(config.symbol, config.binance_ws_url, config.binance_rest_url, config.binance_snapshot_limit),
        BitstampProtocol(config.symbol, config.bitstamp_ws_url, config.bitstamp_rest_url),
    ]


class Application:
    def __init__(self, config: Config, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.metrics = Metrics(registry or CollectorRegistry())
        protocols = exchange_protocols(config)
        self.book = ConsolidatedBook([p.name for p in protocols], config.depth)
        self._greenlets = gevent.pool.Group()
        self.books, self.grpc = self._serving_side(config)
        self.publisher = BookPublisher(self.book, self._publish)
        settings = FeedSettings(silence_timeout=config.silence_timeout, max_connection_age=config.max_connection_age,
                                audit_interval=config.audit_interval)
        self.feeds = [
            ExchangeFeed(
                protocol,
                self.book,
                on_change=self._book_changed,
                on_fatal=self._fatal,
                metrics=self.metrics.exchange(protocol.name),
                settings=settings,
                spawn=self._greenlets.spawn,
            )
            for protocol in protocols
        ]
        self.metrics.add_state_source(merged_book_families(lambda: self.publisher.last))
        self.metrics.add_state_source(self._service_families)
        self.metrics_port: int | None = None
        self._metrics_http: MetricsHttpServer | None = None
        self._serving = False
        self.fatal_error: ExchangeError | None = None
        self._done = gevent.event.AsyncResult()

    def _serving_side(self, config: Config) -> tuple[SymbolBooks, GrpcServer | ServingProcesses]:
        """The streams served from this process, or from ``--serve-processes`` processes fed by it."""
        tls = TlsFiles(config.tls_cert, config.tls_key) if config.tls_cert and config.tls_key else None
        symbols = getattr(config, "symbols", None) or [config.symbol]  # config.symbols: issue 14's feed side
        books = SymbolBooks(symbols, config.depth)  # its streams, or the serving processes' links, follow it
        if not config.serve_processes:
            return books, GrpcServer(books, str(config.grpc_addr), max_streams=config.max_streams,
                                     max_streams_per_connection=config.max_streams_per_connection, tls=tls)
        settings = WorkerSettings(
            max_streams=-(-config.max_streams // config.serve_processes),  # the kernel spreads connections evenly
            tls=tls, log_level=config.log_level, log_format=config.log_format,
            max_streams_per_connection=config.max_streams_per_connection)
        processes = ServingProcesses(books, str(config.grpc_addr), config.serve_processes, settings,
                                     spawn=self._greenlets.spawn)
        self.metrics.add_state_source(processes.families)
        return books, processes

    def start(self) -> None:
        """Bind the listeners (configuration errors surface here) and start the feeds."""
        try:
            self.grpc.start()
        except ServerStartError as error:
            raise ConfigError(str(error)) from None
        if self.config.metrics_addr is not None:
            address = self.config.metrics_addr
            metrics_http = MetricsHttpServer(self.metrics.registry, address.host, address.port)
            try:
                metrics_http.start()
            except OSError as error:
                self.grpc.stop(0)
                raise ConfigError(f"--metrics-addr {address}: {error.strerror or error}") from None
            self._metrics_http = metrics_http
            self.metrics_port = metrics_http.port
            log.info("metrics on http://%s:%d/metrics", address.host, self.metrics_port)
        log.info("serving the consolidated %s book", self.config.symbol)
        for feed in self.feeds:
            self._greenlets.spawn(feed.run)

    def wait(self) -> int:
        """Block until :meth:`stop` or a fatal exchange error; returns the exit code."""
        return self._done.get()

    def stop(self, exit_code: int = EXIT_OK, grace: float = 1.0) -> None:
        if self._done.ready():
            return
        log.info("shutting down")
        self._greenlets.kill(timeout=grace)
        self.grpc.stop(grace)
        if self._metrics_http is not None:
            self._metrics_http.stop(min(grace, 1.0))
        self._done.set(exit_code)

    def _fatal(self, error: ExchangeError) -> None:
        if self.fatal_error is None:
            self.fatal_error = error
            gevent.spawn(self.stop, EXIT_FATAL)

    def _book_changed(self, received_at: float) -> None:
        if self.publisher.refresh():
            self.metrics.frame_to_publish.observe(time.perf_counter() - received_at)
        in_step = tuple(name for name in self.book.exchanges if self.book.in_step(name))
        self.books.set_state(SymbolState(self.config.symbol, tuple(self.book.exchanges), in_step))
        serving = bool(in_step)
        if serving != self._serving:
            self._serving = serving
            self.grpc.set_serving(serving)

    def _publish(self, top: MergedTop) -> None:
        self.books.publish(self.config.symbol, top)

    def _service_families(self) -> list[Metric]:
        stats = self.grpc.stats()
        greenlets = GaugeMetricFamily(
            "orderbook_greenlets", "Greenlets alive that the service started: feeds and their helpers, gRPC calls "
            "(in every serving process)"
        )
        greenlets.add_metric([], len(self._greenlets) + stats.active_calls)
        return [*serving_families(stats, self.books.published_total), greenlets]
