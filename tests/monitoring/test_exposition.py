"""The service's exposition text, as the kit's tests see it: complete, and clean for promtool."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from prom_tools import promtool
from service_metrics import empty_families


def test_every_metric_family_has_a_sample(service_registry: CollectorRegistry) -> None:
    """A family left empty here would be missing from the name checks: drive it in service_metrics.py."""
    assert empty_families(service_registry) == []


def test_exposition_has_the_suffixed_series_names(exported_names: set[str]) -> None:
    assert {
        "orderbook_exchange_connected",
        "orderbook_book_rebuilds_total",
        "orderbook_frames_received_total",
        "orderbook_frame_to_publish_seconds_bucket",
        "orderbook_frame_to_publish_seconds_sum",
        "orderbook_frame_to_publish_seconds_count",
        "orderbook_summaries_published_total",
    } <= exported_names


def test_promtool_check_metrics_reports_nothing(promtool_bin: str, service_exposition: str) -> None:
    result = promtool(promtool_bin, "check", "metrics", stdin=service_exposition)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_per_frame_latency_histograms_carry_their_observations(service_exposition: str) -> None:
    # service_metrics.py observes 0.003 s once per exchange and 0.0004 s once for frame-to-publish.
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(service_exposition) for sample in family.samples}
    for exchange in ("binance", "bitstamp"):
        name = "orderbook_exchange_event_to_applied_seconds"
        assert samples[(f"{name}_bucket", (("exchange", exchange), ("le", "0.0025")))] == 0
        assert samples[(f"{name}_bucket", (("exchange", exchange), ("le", "0.005")))] == 1
        assert samples[(f"{name}_count", (("exchange", exchange),))] == 1
        assert samples[(f"{name}_sum", (("exchange", exchange),))] == 0.003
    assert samples[("orderbook_frame_to_publish_seconds_bucket", (("le", "0.00025"),))] == 0
    assert samples[("orderbook_frame_to_publish_seconds_bucket", (("le", "0.0005"),))] == 1
    assert samples[("orderbook_frame_to_publish_seconds_count", ())] == 1
