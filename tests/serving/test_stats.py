"""The serving figures: the lock-free latency histogram and the stats that travel from serving processes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from orderbook.metrics import LATENCY_BUCKETS, LatencyHistogram
from orderbook.serving.stats import ServingStats

BOUNDS = (0.001, 0.01, 0.1)


def histogram(*values: float, bounds: tuple[float, ...] = BOUNDS) -> LatencyHistogram:
    latency = LatencyHistogram(bounds)
    for value in values:
        latency.observe(value)
    return latency


class OneFamily:
    """A collector exposing one histogram family, to read it back as Prometheus exposes it."""

    def __init__(self, latency: LatencyHistogram, name: str) -> None:
        self.latency, self.name = latency, name

    def collect(self):
        yield self.latency.family(self.name, "test")


def exposed_samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    """``(sample name, le)`` -> value, from the text exposition."""
    (family,) = [f for f in text_string_to_metric_families(generate_latest(registry).decode()) if f.name == name]
    return {(sample.name, sample.labels.get("le", "")): sample.value for sample in family.samples}


@pytest.mark.parametrize(
    ("value", "bucket"),
    [(0.0, 0), (0.0005, 0), (0.001, 0), (0.0010001, 1), (0.01, 1), (0.05, 2), (0.1, 2), (0.1000001, 3), (7.0, 3)],
)
def test_a_value_goes_into_the_first_bucket_whose_bound_is_not_below_it(value: float, bucket: int) -> None:
    latency = histogram(value)
    expected = [0, 0, 0, 0]
    expected[bucket] = 1
    assert latency.counts == expected
    assert latency.total == value


def test_add_sums_counts_and_totals_and_refuses_other_buckets() -> None:
    one, other = histogram(0.0005, 0.05), histogram(0.05, 3.0, 0.002)
    one.add(other)
    assert one.counts == [1, 1, 2, 1]
    assert one.total == pytest.approx(0.0005 + 0.05 + 0.05 + 3.0 + 0.002)
    assert other.counts == [0, 1, 1, 1]  # the added one is unchanged
    with pytest.raises(ValueError, match="different buckets"):
        one.add(LatencyHistogram((0.001, 0.01)))


def test_the_family_is_exposed_with_cumulative_buckets_and_the_sum() -> None:
    registry = CollectorRegistry()
    registry.register(OneFamily(histogram(0.0005, 0.001, 0.05, 0.05, 2.0), "test_latency_seconds"))
    assert exposed_samples(registry, "test_latency_seconds") == {
        ("test_latency_seconds_bucket", "0.001"): 2,
        ("test_latency_seconds_bucket", "0.01"): 2,
        ("test_latency_seconds_bucket", "0.1"): 4,
        ("test_latency_seconds_bucket", "+Inf"): 5,
        ("test_latency_seconds_count", ""): 5,
        ("test_latency_seconds_sum", ""): pytest.approx(2.1015),
    }


def test_the_family_reads_exactly_as_a_prometheus_client_histogram_of_the_same_values() -> None:
    values = [0.0, 0.0001, 0.00025, 0.0003, 0.001, 0.004, 0.01, 0.3, 1.0, 2.5, 4.9, 5.0, 5.1, 60.0]
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours_registry.register(OneFamily(histogram(*values, bounds=LATENCY_BUCKETS), "latency_seconds"))
    theirs = Histogram("latency_seconds", "test", buckets=LATENCY_BUCKETS, registry=theirs_registry)
    for value in values:
        theirs.observe(value)
    ours = exposed_samples(ours_registry, "latency_seconds")
    expected = {key: value for key, value in exposed_samples(theirs_registry, "latency_seconds").items()
                if not key[0].endswith("_created")}
    assert ours.keys() == expected.keys()  # the same `le` labels, spelled the same way
    assert ours == {key: pytest.approx(value) for key, value in expected.items()}


def busy_stats() -> ServingStats:
    stats = ServingStats(open_streams=3, sent=1234, skipped=56, active_calls=5, quote_streams=2, quote_updates_sent=77)
    for value in (0.00005, 0.002, 0.002, 0.7, 9.0):
        stats.send_latency.observe(value)
    return stats


def test_stats_survive_the_trip_through_json() -> None:
    stats = busy_stats()
    back = ServingStats.from_json(json.loads(json.dumps(stats.to_json())))
    assert (back.open_streams, back.sent, back.skipped, back.active_calls) == (3, 1234, 56, 5)
    assert (back.quote_streams, back.quote_updates_sent) == (2, 77)
    assert back.send_latency.bounds == LATENCY_BUCKETS
    assert back.send_latency.counts == stats.send_latency.counts
    assert sum(back.send_latency.counts) == 5
    assert back.send_latency.total == stats.send_latency.total


def test_stats_add_up_field_by_field() -> None:
    total = ServingStats()
    total.add(busy_stats())
    total.add(busy_stats())
    assert (total.open_streams, total.sent, total.skipped, total.active_calls) == (6, 2468, 112, 10)
    assert (total.quote_streams, total.quote_updates_sent) == (4, 154)
    assert sum(total.send_latency.counts) == 10
    assert total.send_latency.total == pytest.approx(2 * (0.00005 + 0.002 + 0.002 + 0.7 + 9.0))



def test_the_counters_of_what_ended_add_up_but_its_gauges_do_not() -> None:
    """What a retired broadcaster or an ended serving process had open is not open any more: summing it kept the
    open-streams gauge above zero with no stream open."""
    total = busy_stats()
    total.add_counters(busy_stats())
    assert (total.open_streams, total.sent, total.skipped, total.active_calls) == (3, 2468, 112, 5)
    assert (total.quote_streams, total.quote_updates_sent) == (2, 154)
    assert sum(total.send_latency.counts) == 10

def malformed(change: str) -> dict[str, Any]:
    data = busy_stats().to_json()
    if change == "missing key":
        del data["skipped"]
    elif change == "one bucket short":
        data["latency_counts"] = data["latency_counts"][:-1]
    elif change == "one bucket too many":
        data["latency_counts"] = [*data["latency_counts"], 0]
    elif change == "counts not a list":
        data["latency_counts"] = 7
    elif change == "text for a number":
        data["sent"] = "many"
    elif change == "null sum":
        data["latency_sum"] = None
    return data


@pytest.mark.parametrize(
    ("change", "error"),
    [("missing key", KeyError), ("one bucket short", ValueError), ("one bucket too many", ValueError),
     ("counts not a list", TypeError), ("text for a number", ValueError), ("null sum", TypeError)],
)
def test_malformed_stats_are_refused(change: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        ServingStats.from_json(malformed(change))


def test_the_bucket_count_error_says_what_was_expected() -> None:
    with pytest.raises(ValueError, match=f"expected {len(LATENCY_BUCKETS) + 1} latency buckets, got 3"):
        ServingStats.from_json({**busy_stats().to_json(), "latency_counts": [1, 2, 3]})
