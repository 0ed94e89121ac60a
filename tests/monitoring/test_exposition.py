"""The service's exposition text, as the kit's tests see it: complete, and clean for promtool; and the relay's, from
a real book node publishing through Redis and a real edge (relay_metrics.py)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from prom_tools import promtool
from service_metrics import empty_families, sample_names

RELAY_PROCESSES = ("book node", "edge")
RELAY_NAMES = {
    "book node": {
        "orderbook_relay_redis_connected",
        "orderbook_relay_leader",
        "orderbook_relay_epoch",
        "orderbook_relay_lease_renewals_total",
        "orderbook_relay_takeovers_total",
        "orderbook_relay_handovers_total",
        "orderbook_relay_published_total",
        "orderbook_relay_redis_errors_total",
        "orderbook_relay_rejected_total",
    },
    "edge": {
        "orderbook_relay_redis_connected",
        "orderbook_relay_source_up",
        "orderbook_relay_epoch",
        "orderbook_relay_received_total",
        "orderbook_relay_dropped_total",
        "orderbook_relay_rejected_total",
        "orderbook_relay_leader_changes_total",
        "orderbook_relay_sources_lost_total",
        "orderbook_relay_redis_errors_total",
        "orderbook_relay_last_message_age_seconds",
        "orderbook_relay_hop_seconds_bucket",
        "orderbook_relay_hop_seconds_sum",
        "orderbook_relay_hop_seconds_count",
        # what a book node serves, an edge serves: the same serving series
        "orderbook_grpc_open_streams",
        "orderbook_summaries_published_total",
        "orderbook_summaries_sent_total",
        "orderbook_summaries_skipped_total",
        "orderbook_publish_to_send_seconds_bucket",
        "orderbook_greenlets",
        "process_cpu_seconds_total",
    },
}
"""The series the kit's relay rules and panels read, as the relay's processes name them."""


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


@pytest.mark.parametrize("process", RELAY_PROCESSES)
def test_relay_exposition_has_the_relay_series(relay_expositions: dict[str, str], process: str) -> None:
    assert RELAY_NAMES[process] <= sample_names(relay_expositions[process])


@pytest.mark.parametrize("process", RELAY_PROCESSES)
def test_every_relay_metric_family_has_a_sample(relay_expositions: dict[str, str], process: str) -> None:
    """A family without samples would be missing from the name checks (the deployment waits until the edge has
    heard the leader: before, it has no last message age). The book node's other families are the exercised
    registry's, driven there: a live node has no reconnect or bad frame to count yet."""
    empty = [family.name for family in text_string_to_metric_families(relay_expositions[process])
             if not family.samples and (process == "edge" or family.name.startswith("orderbook_relay_"))]
    assert empty == []


def test_only_the_edge_exports_the_edge_side_of_the_relay(relay_expositions: dict[str, str]) -> None:
    node, edge = (sample_names(relay_expositions[process]) for process in RELAY_PROCESSES)
    assert not {name for name in node if name.startswith("orderbook_relay_")} & (RELAY_NAMES["edge"] - {
        "orderbook_relay_redis_connected", "orderbook_relay_epoch", "orderbook_relay_redis_errors_total",
        "orderbook_relay_rejected_total"})
    assert "orderbook_relay_leader" not in edge
    assert not {name for name in edge if name.startswith("orderbook_exchange_")}


@pytest.mark.parametrize("process", RELAY_PROCESSES)
def test_promtool_check_metrics_reports_nothing_on_the_relay(promtool_bin: str, relay_expositions: dict[str, str],
                                                             process: str) -> None:
    result = promtool(promtool_bin, "check", "metrics", stdin=relay_expositions[process])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
