"""What the service exports: a real scrape of the real Application's registry, with every metric family touched.

The Application is built but not started: no listener, no feed, no network; it is built with one serving process
(``--serve-processes``), whose families the in-process server does not have. Its metric objects are then
driven through the same calls the feeds and the publisher make, so every family, labelled or not, has at
least one sample and so shows up in the exposition text (a labelled metric with no child exposes nothing).

It follows two symbols, :data:`SYMBOLS`, as a healthy service would: every book in step and served, except
that :data:`LEFT_OUT` is not listed by one venue (:data:`LEFT_OUT_BY`), which serves it without that venue.
"""

from __future__ import annotations

import tempfile
import time

import gevent
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from orderbook.app import Application
from orderbook.book import VenueBook
from orderbook.config import load_config
from orderbook.prices import parse_decimal
from orderbook.serving.fanout import ServingProcesses


SYMBOLS = ("ETHBTC", "BNBBTC")
LEFT_OUT = "BNBBTC"
LEFT_OUT_BY = "bitstamp"
"""Bitstamp does not list BNBBTC: it is served from Binance alone."""


def exercised_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    with tempfile.TemporaryDirectory() as recording:  # made and checked at load, never written: not started
        config = load_config(["--metrics-addr", "off", "--grpc-addr", "127.0.0.1:0", "--serve-processes", "1",
                              "--symbol", ",".join(SYMBOLS), "--record", recording], {})
    app = Application(config, registry)
    assert app.recorder is not None
    app.recorder.stats.dropped_write_failed = 3
    for name in app.venue_names:
        feed = app.metrics.exchange(name)
        feed.set_connected(True)
        feed.reconnect("silence")
        feed.bad_frame("not_json")
        feed.snapshot_fetched(0.02)
        feed.snapshot_error("429")
        feed.event_age(0.003)
        feed.ignored_row("zero_price")
        feed.fell_behind()
        feed.stats.frames = 10
        feed.stats.frame_bytes = 2048
        feed.stats.last_frame_at = time.time()
        for symbol_name in config.symbols:
            symbol = feed.symbol(symbol_name)
            if (name, symbol_name) == (LEFT_OUT_BY, LEFT_OUT):
                symbol.set_listed(False)
                symbol.set_in_step(False)
                continue
            symbol.set_in_step(True)
            symbol.rebuild("gap")
            symbol.stale_diff()
            symbol.audit("divergent", 2)
            symbol.deepening("deepened")
            symbol.stats.bid_levels = lambda: 1
            symbol.stats.ask_levels = lambda: 1
            symbol.stats.lag = lambda: 0.05
    for symbol_name, consolidated in app.consolidated.items():
        book = VenueBook()
        book.load([(parse_decimal("0.05123"), parse_decimal("1.5"))], [(parse_decimal("0.05124"), parse_decimal("2"))])
        consolidated.attach(consolidated.exchanges[0], book)
        if not app.publishers[symbol_name].refresh():
            raise AssertionError(f"the publisher did not publish the first merged book of {symbol_name}")
    app.metrics.frame_to_publish.observe(0.0004)
    app.tasks.task("binance connection", gevent.sleep, 3600)  # running: orderbook_task_up 1
    app.tasks.failures["binance connection"] += 1  # as after one failure and restart
    assert isinstance(app.grpc, ServingProcesses)  # served from processes: the restarts are counted
    app.grpc.restarts_total += 1
    return registry


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def sample_names(text: str) -> set[str]:
    """Every series name in an exposition, with its suffixes (``_bucket``, ``_sum``, ``_count``, ``_total``...)."""
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def empty_families(registry: CollectorRegistry) -> list[str]:
    """Families the exercise left without a sample: a metric added to the service that this module does not drive."""
    return [family.name for family in registry.collect() if not family.samples]
