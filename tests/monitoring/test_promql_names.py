"""The metric-name extractor the dashboard and rule checks rely on: it must neither miss nor invent names."""

from __future__ import annotations

import pytest

from promql_names import metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('up{job="orderbook"} == 0', {"up"}),
        (
            'sum by (exchange, reason) (rate(orderbook_book_rebuilds_total{exchange=~"$exchange"}[$__rate_interval]))',
            {"orderbook_book_rebuilds_total"},
        ),
        ("sum(rate(a_total[5m])) without (instance) / ignoring(le) group_left b", {"a_total", "b"}),
        (
            "histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[5m]))) > 1e-3 and on (instance) y offset 5m",
            {"x_seconds_bucket", "y"},
        ),
        ('label_replace(m, "dst", "$1", "src", "(.*)") or vector(0) unless bool inf', {"m"}),
        ('max_over_time(frame_age_seconds{instance=~"${instance}"}[1h:5m])', {"frame_age_seconds"}),
        ("rate(ns:recorded:rate5m[5m]) * 60", {"ns:recorded:rate5m"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
