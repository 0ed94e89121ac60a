"""The running service: the venue feeds, each symbol's consolidated book and publisher, gRPC and metrics, wired
together.

Assumes a gevent-patched process with grpc's gevent integration initialised (see :mod:`orderbook.boot`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path

import gevent
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from orderbook.config import Config, ConfigError
from orderbook.consolidated import BookPublisher, ConsolidatedBook
from orderbook.exchanges.base import ExchangeError
from orderbook.exit_codes import EXIT_FATAL
from orderbook.feed import FeedSettings, VenueFeed
from orderbook.listeners import Listening
from orderbook.merge import MergedTop
from orderbook.metrics import Metrics, merged_book_families
from orderbook.recording.format import VERSION, Kind
from orderbook.recording.writer import Recorder
from orderbook.relay.keys import Keys
from orderbook.relay.node import BookNode, OtherDeployment
from orderbook.serving.fanout import ServingProcesses, WorkerSettings
from orderbook.serving.codec import encode_summary
from orderbook.serving.grpc_server import GrpcServer, TlsFiles
from orderbook.serving.quotes import BookQuotes
from orderbook.serving.stats import serving_families
from orderbook.serving.symbols import ServedSymbols
from orderbook.symbol_state import SymbolState

log = logging.getLogger(__name__)

LISTING_WAIT = 5.0
"""Seconds the start waits for the venues' listings (:meth:`Application.check_listings`): one round trip each
normally; a venue that refuses connections has used its three attempts within it."""


class Application(Listening):
    def __init__(self, config: Config, registry: CollectorRegistry | None = None) -> None:
        super().__init__()
        self.config = config
        self.metrics = Metrics(registry or CollectorRegistry())
        venues = [settings.venue() for settings in config.venues]
        self.venue_names = [venue.name for venue in venues]
        self.consolidated = {symbol: ConsolidatedBook(self.venue_names, config.depth) for symbol in config.symbols}
        self.served, self.quotes, self.grpc = self._serving_side(config)
        self.publishers = {symbol: BookPublisher(book, partial(self._publish, symbol))
                           for symbol, book in self.consolidated.items()}
        self.publisher = self.publishers[config.symbol]
        self._held: dict[str, None] = {}
        """The symbols whose changes are held back, nothing reading them (:meth:`_book_changed`)."""
        self.served.before_read = self._publish_held
        self._unlisted: dict[str, set[str]] = {symbol: set() for symbol in config.symbols}
        self._in_step: dict[str, tuple[str, ...]] = dict.fromkeys(config.symbols, ())
        """Each symbol's venues in step, as last reported to ``Symbols``."""
        self.recorder = self._recorder(config)
        """``--record``: where every venue's traffic (and with ``--record-summaries`` every summary) is recorded."""
        self._summaries_recorded = self.recorder is not None and config.record_summaries
        settings = FeedSettings(silence_timeout=config.silence_timeout, max_connection_age=config.max_connection_age,
                                audit_interval=config.audit_interval, max_lag=config.max_lag,
                                listing_interval=config.listing_interval)
        self.feeds = [
            VenueFeed(
                venue,
                self.consolidated,
                on_change=self._book_changed,
                on_listing=self._listing,
                on_unlisted=self._unlisted_by,
                on_relisted=self._relisted_by,
                on_deep_change=self.quotes.refresh,  # every level counts for a quote, not only the served top
                metrics=self.metrics.exchange(venue.name),
                settings=settings,
                spawn=self.tasks.spawn,
                task=self.tasks.task,
                recorder=self.recorder,
            )
            for venue in venues
        ]
        self.metrics.add_state_source(merged_book_families(self._merged_tops))
        self.metrics.add_state_source(self._service_families)
        self.metrics.add_state_source(self.tasks.families)
        if self.recorder is not None:
            self.metrics.add_state_source(self.recorder.stats.families)
        self.tasks.on_health = self._refresh_health
        self.relay: BookNode | None = None
        """``--publish``: this process's part in the relay (publishing while leader, else standing by)."""
        if config.publish is not None:
            self.relay = BookNode(config.publish, self.served, self._symbols_in_step, self.tasks.task,
                                  on_conflict=self._fatal, keys=Keys(config.relay_prefix, config.shard),
                                  key=config.relay_key)
            self.metrics.add_state_source(partial(self.relay.stats.families, config.shard))
        self._serving = False
        self._default_in_step = False
        self.fatal_error: ExchangeError | OtherDeployment | None = None

    @staticmethod
    def _recorder(config: Config) -> Recorder | None:
        if config.record is None:
            return None
        start = {"version": VERSION, "symbols": list(config.symbols), "depth": config.depth,
                 "summaries": config.record_summaries,
                 "venues": {settings.name: {"ws_url": settings.ws_url, "rest_url": settings.rest_url,
                                            "options": dict(settings.options)} for settings in config.venues}}
        return Recorder(Path(config.record), file_bytes=config.record_file_bytes,
                        max_bytes=config.record_max_bytes, start_meta=start)

    def _serving_side(self, config: Config) -> tuple[ServedSymbols, BookQuotes, GrpcServer | ServingProcesses]:
        """The streams served from this process, or from ``--serve-processes`` processes fed by it; the quotes are
        computed here either way (:mod:`orderbook.serving.quotes`)."""
        tls = TlsFiles(Path(config.tls_cert), Path(config.tls_key)) if config.tls_cert and config.tls_key else None
        served = ServedSymbols(config.symbols, config.depth)  # its streams, or the serving processes' links, follow it
        for symbol in config.symbols:
            served.set_state(SymbolState(symbol, tuple(self.venue_names), ()))
        quotes = BookQuotes(served, self.consolidated, dict(config.taker_fees))
        if not config.serve_processes:
            return served, quotes, GrpcServer(served, config.grpc_addr, max_streams=config.max_streams,
                                              max_streams_per_connection=config.max_streams_per_connection, tls=tls,
                                              quotes=quotes.quotes)
        settings = WorkerSettings(
            max_streams=-(-config.max_streams // config.serve_processes),  # the kernel spreads connections evenly
            tls=tls, log_level=config.log_level, log_format=config.log_format,
            max_streams_per_connection=config.max_streams_per_connection)
        processes = ServingProcesses(served, config.grpc_addr, config.serve_processes, settings,
                                     spawn=self.tasks.spawn, quotes=quotes.quotes)
        self.metrics.add_state_source(processes.families)
        return served, quotes, processes

    def start(self, listing_wait: float = LISTING_WAIT) -> None:
        """Bind the listeners, check the symbols against the venues' listings, and start the feeds. A
        configuration error (a port in use, a symbol no venue lists) raises :class:`ConfigError` before any feed
        starts, so that the process can end with that one line (its start-up lines held back,
        :func:`orderbook.logs.hold_lines`)."""
        self.start_listening(self.config.metrics_addr, self.metrics.registry, self.config.setting)
        self.check_listings(listing_wait)
        symbols = self.config.symbols
        log.info("serving the consolidated %s book%s", symbols[0],
                 f" and {len(symbols) - 1} more ({', '.join(symbols[1:6])}{', ...' if len(symbols) > 6 else ''})"
                 if len(symbols) > 1 else "")
        if self.recorder is not None:
            self.recorder.start()
            self.tasks.task("recording watch", self.recorder.watch, needed=False)
            log.info("recording in %s", self.config.record)
        for feed in self.feeds:
            self.tasks.task(f"{feed.name} feed", feed.run)
        self.tasks.task("quotes", self.quotes.run)
        if self.relay is not None:
            self.relay.start()

    def _before_stop(self) -> None:
        if self.recorder is not None:
            self.recorder.record(Kind.STOPPING, time.time_ns(), 0, None)  # what follows is the stop's doing
        if self.relay is not None:
            self.relay.stop()  # a standby takes over now, not when the lease lapses

    def stop(self, exit_code: int = 0, grace: float = 1.0) -> None:
        super().stop(exit_code, grace)
        if self.recorder is not None:
            self.recorder.stop()  # after the feeds: their connections' ends are recorded too

    def _fatal(self, error: ExchangeError | OtherDeployment) -> None:
        if self.fatal_error is None:
            self.fatal_error = error
            gevent.spawn(self.stop, EXIT_FATAL)

    # -- which venue lists which symbol ------------------------------------------------------------------------

    def check_listings(self, wait: float) -> None:
        """Ask every venue now which symbols it lists (each feed takes the answer when it starts), and refuse a
        symbol that none of them lists. Only venues that answered within ``wait`` seconds are judged, and only if
        all did: one that is slow or unreachable does not hold the start up, its feed goes on asking, and a
        symbol found unlisted everywhere later is served as having no venue (:meth:`_unlisted_by`)."""
        asked = [feed.ask_listing() for feed in self.feeds]
        gevent.joinall(asked, timeout=wait)
        answers = [greenlet.value for greenlet in asked if greenlet.successful()]
        listings = [listed for listed in answers if listed is not None]  # None: the venue could not say
        if len(listings) < len(asked):
            return
        unlisted = [symbol for symbol in self.config.symbols if not any(symbol in listed for listed in listings)]
        if unlisted:
            raise ConfigError(self._nobody_lists(unlisted))

    def _nobody_lists(self, symbols: list[str]) -> str:
        return (f"{self.config.setting('symbol')} {', '.join(symbols)}: no venue lists "
                f"{'it' if len(symbols) == 1 else 'them'} ({', '.join(self.venue_titles())})")

    def _listing(self, venue: str, unlisted: frozenset[str]) -> None:
        """The venue has said what it lists (each symbol it leaves out was reported by ``_unlisted_by``)."""
        log.info("%s follows %d of the %d symbols", venue, len(self.config.symbols) - len(unlisted),
                 len(self.config.symbols))

    def _unlisted_by(self, venue: str, symbol: str, reason: str) -> None:
        """``venue`` no longer lists ``symbol``, or it stopped trading there. One that no venue lists any more stays
        configured, served as having no venue (an empty book, ``exchanges`` empty), until one lists it again: venues
        halt and delist pairs while running, which is no configuration error (only a symbol no venue lists at start
        is, :meth:`check_listings`)."""
        unlisted = self._unlisted[symbol]
        unlisted.add(venue)
        self._report_state(symbol)
        if len(unlisted) == len(self.venue_names):
            log.warning("%s: no venue lists it or trades it now; served with no venue until one does", symbol)

    def _relisted_by(self, venue: str, symbol: str) -> None:
        """``symbol`` trades at ``venue`` again (its book is rebuilt, and served once in step)."""
        self._unlisted[symbol].discard(venue)
        self._report_state(symbol)

    def venue_titles(self) -> list[str]:
        return [feed.venue.title for feed in self.feeds]

    def listing_venues(self, symbol: str) -> list[str]:
        """The venues that list ``symbol`` (as far as they have said)."""
        return [name for name in self.venue_names if name not in self._unlisted[symbol]]

    # -- publishing --------------------------------------------------------------------------------------------

    def _book_changed(self, symbol: str, received_at: float) -> None:
        """A venue's part of ``symbol``'s book changed: publish its merged top if that moved, and its state if a
        venue came or went. Called at most once for each symbol a batch of frames changed
        (:class:`~orderbook.feed.symbol.Batch`), with ``received_at`` the moment of its first change in the batch:
        the frame-to-publish latency is that of the oldest change the summary carries.

        A symbol that nothing reads (no stream of it, no serving process or relay following every symbol:
        :meth:`ServedSymbols.read`) is not merged, encoded nor published: it is held back until a reader comes,
        which gets it merged from the books as they are then (:meth:`_publish_held`), never a summary from before.
        With hundreds of symbols and a few watched, that was most of the book process's work. Recording the
        summaries (``--record-summaries``) reads every symbol."""
        if self._summaries_recorded or self.served.read(symbol):
            if self.publishers[symbol].refresh():
                self.metrics.frame_to_publish.observe(time.perf_counter() - received_at)
        else:
            self._held[symbol] = None
        self.quotes.refresh(symbol)  # any level may have moved, not only the top: every quote of the symbol
        if self.consolidated[symbol].in_step_venues != self._in_step[symbol]:
            self._report_state(symbol)  # only when a venue came or went: most calls are a moved top

    def _report_state(self, symbol: str) -> None:
        """Tell ``Symbols`` which venues list ``symbol`` and which are in step now; health follows the default
        symbol's (BookSummary's)."""
        self._in_step[symbol] = in_step = self.consolidated[symbol].in_step_venues
        self.served.set_state(SymbolState(symbol, tuple(self.listing_venues(symbol)), in_step))
        if symbol == self.config.symbol:
            self._default_in_step = bool(in_step)
            self._refresh_health()

    def _refresh_health(self) -> None:
        """SERVING while a venue of the default symbol is in step and no needed task is down."""
        serving = self._default_in_step and self.tasks.healthy
        if serving != self._serving:
            self._serving = serving
            self.grpc.set_serving(serving)

    def _symbols_in_step(self) -> int:
        """How many symbols have a venue in step: the relay's measure of how ready this book node is."""
        return sum(1 for in_step in self._in_step.values() if in_step)

    def _publish_held(self, symbols: Iterable[str]) -> None:
        """A reader is about to read ``symbols``: publish those held back, merged from the books as they are now."""
        held = self._held
        if not held:
            return
        for symbol in symbols:
            if symbol in held:
                del held[symbol]
                self.publishers[symbol].refresh()

    def _merged_tops(self) -> Iterator[tuple[str, MergedTop | None]]:
        """Each symbol's served book for /metrics' best prices and spread: the last published, or, for one held
        back, its best levels merged from the books now (what a reader would be given)."""
        held = self._held
        for symbol, publisher in self.publishers.items():
            yield symbol, self.consolidated[symbol].merged_top(1) if symbol in held else publisher.last

    def _publish(self, symbol: str, top: MergedTop) -> None:
        summary = encode_summary(top)
        self.served.publish_summary(symbol, summary)
        if self._summaries_recorded:
            assert self.recorder is not None
            self.recorder.record(Kind.SUMMARY, time.time_ns(), 0, {"symbol": symbol}, summary)

    def _service_families(self) -> list[Metric]:
        stats = self.grpc.stats()
        greenlets = GaugeMetricFamily(
            "orderbook_greenlets", "Greenlets alive that the service started: feeds and their helpers, gRPC calls "
            "(in every serving process)"
        )
        greenlets.add_metric([], len(self.tasks) + stats.active_calls)
        return [*serving_families(stats, self.served.published_total), greenlets]
