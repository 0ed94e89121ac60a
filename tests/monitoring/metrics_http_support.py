"""A fixed registry for the /metrics server tests: the helper process serves it, the tests build the same one to
compare the exposition byte for byte. Built from metric families rather than Counter/Histogram objects, whose
``_created`` samples (their creation time) differ between two processes; no process collector either."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric


class FixedCollector:
    def collect(self) -> Iterator[Metric]:
        frames = CounterMetricFamily("demo_frames_received", "Frames received", labels=["exchange"])
        frames.add_metric(["binance"], 12)
        frames.add_metric(["bitstamp"], 3)
        yield frames
        yield GaugeMetricFamily("demo_spread", "Merged spread", value=0.00001)
        yield HistogramMetricFamily("demo_latency_seconds", "Latency", sum_value=2.0534,
                                    buckets=[("0.001", 1), ("0.01", 2), ("0.1", 3), ("+Inf", 4)])
        # Enough series that the body is tens of kilobytes, like the service's own exposition.
        wide = GaugeMetricFamily("demo_level_amount", "One gauge per level", labels=["side", "level"])
        for side in ("bid", "ask"):
            for level in range(200):
                wide.add_metric([side, str(level)], level * 1.5)
        yield wide


def fixed_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)  # so that name[] filters find the families
    registry.register(FixedCollector())
    return registry
