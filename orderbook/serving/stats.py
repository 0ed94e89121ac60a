"""What the serving side counts: streams, summaries sent and skipped, RPCs running, and publish-to-send latency.

Plain attributes updated on every send and turned into metric families only when Prometheus scrapes. The same
figures travel from each serving process to the book process (:mod:`orderbook.serving.fanout`) as a small JSON
object, where they are summed, so /metrics reads the same whether the streams are served in one process or many.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from orderbook.metrics import LatencyHistogram


@dataclass(slots=True)
class ServingStats:
    """One serving process's figures (or the sum of several: see :meth:`add`)."""

    open_streams: int = 0
    sent: int = 0
    skipped: int = 0
    active_calls: int = 0
    send_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    quote_streams: int = 0
    """``OrderbookQuotes.Quote`` streams open now."""
    quote_updates_sent: int = 0
    """Quote updates handed to client streams."""

    def add(self, other: ServingStats) -> None:
        """Add ``other``'s figures, its gauges (streams and calls open now) as well as its counters."""
        self.add_counters(other)
        self.open_streams += other.open_streams
        self.active_calls += other.active_calls
        self.quote_streams += other.quote_streams

    def add_counters(self, other: ServingStats) -> None:
        """Add ``other``'s counters only: what a retired broadcaster or an ended serving process sent stays in the
        sums, so they never go back, but what it had open is no longer its to report (a retired broadcaster's
        streams are still counted where they are open until they end)."""
        self.sent += other.sent
        self.skipped += other.skipped
        self.send_latency.add(other.send_latency)
        self.quote_updates_sent += other.quote_updates_sent

    def to_json(self) -> dict[str, Any]:
        return {"open_streams": self.open_streams, "sent": self.sent, "skipped": self.skipped,
                "active_calls": self.active_calls, "latency_counts": self.send_latency.counts,
                "latency_sum": self.send_latency.total, "quote_streams": self.quote_streams,
                "quote_updates_sent": self.quote_updates_sent}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServingStats:
        """Raises ``KeyError``, ``TypeError`` or ``ValueError`` on a malformed object."""
        latency = LatencyHistogram()
        counts = [int(count) for count in data["latency_counts"]]
        if len(counts) != len(latency.counts):
            raise ValueError(f"expected {len(latency.counts)} latency buckets, got {len(counts)}")
        latency.counts, latency.total = counts, float(data["latency_sum"])
        return cls(int(data["open_streams"]), int(data["sent"]), int(data["skipped"]), int(data["active_calls"]),
                   latency, int(data["quote_streams"]), int(data["quote_updates_sent"]))


def serving_families(stats: ServingStats, published: int) -> Iterable[Metric]:
    streams = GaugeMetricFamily("orderbook_grpc_open_streams", "Book and BookSummary streams open")
    streams.add_metric([], stats.open_streams)
    published_family = CounterMetricFamily("orderbook_summaries_published", "Summaries published (the book changed)")
    published_family.add_metric([], published)
    sent = CounterMetricFamily("orderbook_summaries_sent", "Summaries handed to client streams")
    sent.add_metric([], stats.sent)
    skipped = CounterMetricFamily(
        "orderbook_summaries_skipped", "Summaries a slow client never saw because a newer one replaced it"
    )
    skipped.add_metric([], stats.skipped)
    latency = stats.send_latency.family(
        "orderbook_publish_to_send_seconds", "Summary published to handed to a client's stream"
    )
    quote_streams = GaugeMetricFamily("orderbook_quote_open_streams", "OrderbookQuotes.Quote streams open")
    quote_streams.add_metric([], stats.quote_streams)
    quote_sent = CounterMetricFamily("orderbook_quote_updates_sent", "Quote updates handed to client streams")
    quote_sent.add_metric([], stats.quote_updates_sent)
    return [streams, published_family, sent, skipped, latency, quote_streams, quote_sent]
