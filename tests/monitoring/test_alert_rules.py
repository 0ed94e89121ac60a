"""monitoring/prometheus.yml and alerts.yml: they load, they name only exported metrics, and each alert fires
when, and only when, it should.

The firing tests run ``promtool test rules`` on the rules exactly as a real Prometheus loaded them (read back
from its rules API), minus the annotations: promtool compares annotations verbatim, and the templates are
checked by ``promtool check rules`` and by the annotation test here instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orderbook.config import load_config
from prom_tools import MONITORING, PrometheusApi, promtool
from promql_names import metric_names

ALERTS = {
    "OrderbookMetricsTargetDown",
    "OrderbookExchangeDisconnected",
    "OrderbookExchangeOutOfStep",
    "OrderbookRebuildStorm",
    "OrderbookStaleBook",
    "OrderbookFrameToPublishLatencyHigh",
    "OrderbookPublishToSendLatencyHigh",
    "OrderbookServingProcessRestarts",
    "OrderbookAuditDivergence",
    "OrderbookAuditOverdue",
}
SERVICE = {"instance": "svc:9102", "job": "orderbook"}


@pytest.fixture(scope="module")
def loaded_rules(kit_prometheus: PrometheusApi) -> list[dict[str, Any]]:
    return kit_prometheus.rules()


def test_scrape_config_passes_promtool(promtool_bin: str) -> None:
    result = promtool(promtool_bin, "check", "config", str(MONITORING / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_scrape_config_targets_the_default_metrics_addr() -> None:
    default = load_config([], {}).metrics_addr
    assert default is not None
    assert f'targets: ["{default}"]' in (MONITORING / "prometheus.yml").read_text()


def test_alert_rules_pass_promtool(promtool_bin: str) -> None:
    result = promtool(promtool_bin, "check", "rules", str(MONITORING / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


@pytest.mark.e2e
def test_a_healthy_service_raises_no_alert(kit_prometheus: PrometheusApi, loaded_rules: list[dict[str, Any]]) -> None:
    assert {rule["name"] for rule in loaded_rules} == ALERTS
    assert all(rule["health"] == "ok" for rule in loaded_rules), [(r["name"], r.get("lastError")) for r in loaded_rules]
    assert kit_prometheus.alerts() == []


def test_every_alert_has_a_hold_time_a_severity_and_text(loaded_rules: list[dict[str, Any]]) -> None:
    for rule in loaded_rules:
        assert rule["type"] == "alerting"
        assert rule["duration"] > 0, rule["name"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["name"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["name"]
        if "exchange" in rule["query"]:
            assert "$labels.exchange" in rule["annotations"]["summary"], rule["name"]


def test_exchange_health_alerts_hold_for_30_seconds(loaded_rules: list[dict[str, Any]]) -> None:
    durations = {rule["name"]: rule["duration"] for rule in loaded_rules}
    assert durations["OrderbookExchangeDisconnected"] == 30
    assert durations["OrderbookExchangeOutOfStep"] == 30


def test_alert_rules_name_only_exported_metrics(loaded_rules: list[dict[str, Any]], exported_names: set[str]) -> None:
    used = {rule["name"]: metric_names(rule["query"]) for rule in loaded_rules}
    assert all(used.values()), used
    unknown = {name: names - exported_names - {"up"} for name, names in used.items() if names - exported_names - {"up"}}
    assert unknown == {}


# -- promtool test rules -------------------------------------------------------------------------------------


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    rendered = ",".join(f'{key}="{value}"' for key, value in sorted({**SERVICE, **labels}.items()))
    return {"series": f"{name}{{{rendered}}}", "values": values}


def buckets(name: str, per_step: dict[str, int], steps: int) -> list[dict[str, str]]:
    """Cumulative histogram buckets growing by ``per_step`` observations each step (``le`` -> count <= le)."""
    return [series(f"{name}_bucket", f"0+{count}x{steps}", le=le) for le, count in per_step.items()]


def expect(alert: str, at: str, *firing: dict[str, str]) -> dict[str, Any]:
    return {"alertname": alert, "eval_time": at, "exp_alerts": [{"exp_labels": labels} for labels in firing]}


def critical(**labels: str) -> dict[str, str]:
    return {**SERVICE, **labels, "severity": "critical"}


def warning(**labels: str) -> dict[str, str]:
    return {**labels, "severity": "warning"}


def rules_file(loaded_rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "groups": [{
            "name": "orderbook",
            "rules": [
                {"alert": r["name"], "expr": r["query"], "for": f"{r['duration']:g}s", "labels": r["labels"]}
                for r in loaded_rules
            ],
        }]
    }


EXCHANGE_HEALTH = {
    "interval": "10s",
    "input_series": [
        series("orderbook_exchange_connected", "1x12", exchange="binance"),
        series("orderbook_exchange_connected", "1 1 0x10", exchange="bitstamp"),  # down from 20 s
        series("orderbook_exchange_in_step", "1x12", exchange="binance"),
        series("orderbook_exchange_in_step", "1 1 1 0x9", exchange="bitstamp"),  # out of step from 30 s
    ],
    "alert_rule_test": [
        expect("OrderbookExchangeDisconnected", "40s"),  # 20 s down: pending
        expect("OrderbookExchangeDisconnected", "60s", critical(exchange="bitstamp")),
        expect("OrderbookExchangeOutOfStep", "50s"),
        expect("OrderbookExchangeOutOfStep", "70s", critical(exchange="bitstamp")),
    ],
}

TARGET_DOWN = {
    "interval": "10s",
    "input_series": [
        {"series": 'up{instance="a:9102",job="orderbook"}', "values": "1 1 0x12"},  # down from 20 s
        {"series": 'up{instance="b:9102",job="orderbook"}', "values": "1x14"},
    ],
    "alert_rule_test": [
        expect("OrderbookMetricsTargetDown", "70s"),
        expect("OrderbookMetricsTargetDown", "90s", {"instance": "a:9102", "job": "orderbook", "severity": "critical"}),
    ],
}

REBUILD_STORM = {
    "interval": "30s",
    "input_series": [
        series("orderbook_book_rebuilds_total", "0+3x20", exchange="binance", reason="gap"),  # 6 a minute
        series("orderbook_book_rebuilds_total", "0+0.45x20", exchange="bitstamp", reason="silence"),  # 0.9 a minute
    ],
    "alert_rule_test": [
        expect("OrderbookRebuildStorm", "1m"),
        expect("OrderbookRebuildStorm", "8m", warning(instance="svc:9102", exchange="binance")),
    ],
}

STALE_BOOK = {
    "interval": "10s",
    "input_series": [
        series("orderbook_last_frame_age_seconds", "0+10x10", exchange="binance"),  # 40 s old at 40 s
        series("orderbook_last_frame_age_seconds", "0.5x10", exchange="bitstamp"),
    ],
    "alert_rule_test": [
        expect("OrderbookStaleBook", "30s"),
        expect("OrderbookStaleBook", "60s", {**SERVICE, "exchange": "binance", "severity": "warning"}),
    ],
}

# p99 by linear interpolation inside the bucket holding the 99th percentile:
# every observation in (0.05, 0.1] -> p99 0.0995; in (0.1, 0.25] -> 0.2485; in (0.025, 0.05] -> 0.04975.
SLOW_FRAME_TO_PUBLISH = {
    "interval": "30s",
    "input_series": [
        *buckets("orderbook_frame_to_publish_seconds", {"0.05": 0, "0.1": 10, "+Inf": 10}, 20),
        *buckets("orderbook_publish_to_send_seconds", {"0.05": 0, "0.1": 10, "+Inf": 10}, 20),
    ],
    "alert_rule_test": [
        expect("OrderbookFrameToPublishLatencyHigh", "2m"),
        expect("OrderbookFrameToPublishLatencyHigh", "8m", warning(instance="svc:9102")),
        expect("OrderbookPublishToSendLatencyHigh", "8m"),  # 0.0995 is under its 0.1 threshold
    ],
}

SLOW_PUBLISH_TO_SEND = {
    "interval": "30s",
    "input_series": [
        *buckets("orderbook_frame_to_publish_seconds", {"0.025": 0, "0.05": 10, "+Inf": 10}, 20),
        *buckets("orderbook_publish_to_send_seconds", {"0.1": 0, "0.25": 10, "+Inf": 10}, 20),
    ],
    "alert_rule_test": [
        expect("OrderbookPublishToSendLatencyHigh", "8m", warning(instance="svc:9102")),
        expect("OrderbookFrameToPublishLatencyHigh", "8m"),
    ],
}

SERVING_PROCESS_RESTARTS = {
    "interval": "1m",
    "input_series": [
        # One restart every 5 minutes (3 in 15: fires from the 3rd), then steady; another instance restarts twice.
        series("orderbook_serving_process_restarts_total", "0 0 0 0 0 1 1 1 1 1 2 2 2 2 2 3x30"),
        {"series": 'orderbook_serving_process_restarts_total{instance="b:9102",job="orderbook"}',
         "values": "0 1 1 1 1 2x40"},
    ],
    "alert_rule_test": [
        expect("OrderbookServingProcessRestarts", "14m"),
        expect("OrderbookServingProcessRestarts", "17m", warning(instance="svc:9102", job="orderbook")),
        expect("OrderbookServingProcessRestarts", "40m"),  # none in the last 15 minutes
    ],
}


AUDITS = {
    "interval": "1m",
    "input_series": [
        # bitstamp: one divergent audit at minute 5; binance: matches only, but its audits stop at minute 10
        series("orderbook_audits_total", "0 0 0 0 0 1x80", exchange="bitstamp", result="divergent"),
        series("orderbook_audits_total", "0+1x80", exchange="bitstamp", result="match"),
        series("orderbook_audits_total", "0+1x80", exchange="binance", result="match"),
        series("orderbook_audit_last_age_seconds", "30x10 90+60x70", exchange="binance"),
        series("orderbook_audit_last_age_seconds", "30x80", exchange="bitstamp"),
    ],
    "alert_rule_test": [
        expect("OrderbookAuditDivergence", "3m"),
        expect("OrderbookAuditDivergence", "8m", {**SERVICE, "exchange": "bitstamp", "result": "divergent",
                                                  "severity": "warning"}),
        expect("OrderbookAuditDivergence", "70m"),  # an hour after, with no other
        expect("OrderbookAuditOverdue", "20m"),  # 15 minutes old at minute 24
        expect("OrderbookAuditOverdue", "31m", {**SERVICE, "exchange": "binance", "severity": "warning"}),
    ],
}


@pytest.mark.parametrize(
    "case",
    [EXCHANGE_HEALTH, TARGET_DOWN, REBUILD_STORM, STALE_BOOK, SLOW_FRAME_TO_PUBLISH, SLOW_PUBLISH_TO_SEND,
     SERVING_PROCESS_RESTARTS, AUDITS],
    ids=["exchange-health", "target-down", "rebuild-storm", "stale-book", "frame-to-publish", "publish-to-send",
         "serving-process-restarts", "audits"],
)
@pytest.mark.e2e
def test_alert_fires_when_and_only_when_it_should(
    case: dict[str, Any], loaded_rules: list[dict[str, Any]], promtool_bin: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(rules_file(loaded_rules)))
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps({"rule_files": [str(rules)], "evaluation_interval": "10s", "tests": [case]}))
    result = promtool(promtool_bin, "test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr
