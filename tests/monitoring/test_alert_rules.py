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
import yaml

from orderbook.config import load_config, load_edge_config
from prom_tools import JOBS, MONITORING, PrometheusApi, promtool
from promql_names import metric_names
from service_metrics import LEFT_OUT, LEFT_OUT_BY

from tests.support.waiting import wait_until

ALERTS = {
    "OrderbookMetricsTargetDown",
    "OrderbookExchangeDisconnected",
    "OrderbookExchangeOutOfStep",
    "OrderbookExchangeBehind",
    "OrderbookTaskFailing",
    "OrderbookRebuildStorm",
    "OrderbookStaleBook",
    "OrderbookFrameToPublishLatencyHigh",
    "OrderbookPublishToSendLatencyHigh",
    "OrderbookServingProcessRestarts",
    "OrderbookRecordDropped",
    "OrderbookAuditDivergence",
    "OrderbookAuditOverdue",
    "OrderbookSymbolNotListed",
}
RELAY_ALERTS = {
    "OrderbookRelayNoLeader",
    "OrderbookRelayTakeoverStorm",
    "OrderbookEdgeWithoutSource",
    "OrderbookRelayRedisDown",
    "OrderbookRelayHopLatencyHigh",
    "OrderbookRelayRejectedValues",
    "OrderbookRelayOtherDeployment",
}
"""The relay's (book nodes with --publish, and edges): the group orderbook-relay."""
PER_PROCESS_RELAY = {"OrderbookEdgeWithoutSource", "OrderbookRelayRedisDown", "OrderbookRelayHopLatencyHigh",
                     "OrderbookRelayRejectedValues", "OrderbookRelayOtherDeployment"}
"""The relay alerts about one process: they fire per instance and say which."""
PER_BOOK = {
    "OrderbookExchangeOutOfStep",
    "OrderbookRebuildStorm",
    "OrderbookAuditDivergence",
    "OrderbookAuditOverdue",
    "OrderbookSymbolNotListed",
}
"""The alerts about one venue's book of one symbol: they fire per (exchange, symbol) and say which symbol."""
PER_VENUE = {"OrderbookExchangeDisconnected", "OrderbookStaleBook"}
"""The alerts about a venue's connections: once per exchange, whatever the number of symbols."""
SERVICE = {"instance": "svc:9102", "job": "orderbook"}


@pytest.fixture(scope="module")
def loaded_rules(kit_prometheus: PrometheusApi) -> list[dict[str, Any]]:
    return kit_prometheus.rules()


def test_scrape_config_passes_promtool(promtool_bin: str) -> None:
    result = promtool(promtool_bin, "check", "config", str(MONITORING / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_scrape_config_targets_the_default_metrics_addrs() -> None:
    """Job orderbook scrapes a book node's default --metrics-addr, job orderbook-edge an edge's."""
    node = load_config([], {}).metrics_addr
    edge = load_edge_config(["--source", "redis://127.0.0.1:6379/0"], {}).metrics_addr
    assert node is not None and edge is not None
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
               for job in config["scrape_configs"]}
    assert targets == {"orderbook": [str(node)], "orderbook-edge": [str(edge)]}
    assert {name: target for name, (target,) in targets.items()} == JOBS  # what the tests' rewrite expects


def test_alert_rules_pass_promtool(promtool_bin: str) -> None:
    result = promtool(promtool_bin, "check", "rules", str(MONITORING / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS | RELAY_ALERTS)} rules found" in result.stdout


def test_relay_alerts_are_a_group_of_their_own() -> None:
    groups = {group["name"]: {rule["alert"] for rule in group["rules"]}
              for group in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]}
    assert groups == {"orderbook": ALERTS, "orderbook-relay": RELAY_ALERTS}


def test_target_down_covers_book_nodes_and_edges(loaded_rules: list[dict[str, Any]]) -> None:
    """A down edge exports nothing, so no relay alert can fire for it: the scrape's own up says so."""
    (query,) = [rule["query"] for rule in loaded_rules if rule["name"] == "OrderbookMetricsTargetDown"]
    assert query == 'up{job=~"orderbook|orderbook-edge"} == 0'


def test_a_healthy_service_raises_no_alert_but_the_left_out_symbol(
    kit_prometheus: PrometheusApi, loaded_rules: list[dict[str, Any]]
) -> None:
    """Every book in step, one symbol not listed by one venue (service_metrics.py): that book is out of step, and
    not an outage; the only alert is the info that the symbol is left out there (pending, or firing after 1m).
    Beside it, a book node that does not publish (the exercised registry), and a relay: a leading book node and an
    edge that hears it (relay_metrics.py), which raise nothing."""
    assert {rule["name"] for rule in loaded_rules} == ALERTS | RELAY_ALERTS
    assert all(rule["health"] == "ok" for rule in loaded_rules), [(r["name"], r.get("lastError")) for r in loaded_rules]

    def alerts() -> list[tuple[str, str | None, str | None]]:
        return [(a["labels"]["alertname"], a["labels"].get("exchange"), a["labels"].get("symbol"))
                for a in kit_prometheus.alerts()]

    wait_until(alerts, 10, "the rules to be evaluated on the service's metrics", interval=0.25)
    assert alerts() == [("OrderbookSymbolNotListed", LEFT_OUT_BY, LEFT_OUT)]


def test_every_alert_has_a_hold_time_a_severity_and_text(loaded_rules: list[dict[str, Any]]) -> None:
    for rule in loaded_rules:
        assert rule["type"] == "alerting"
        assert rule["duration"] > 0, rule["name"]
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["name"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["name"]
        if "exchange" in rule["query"]:
            assert "$labels.exchange" in rule["annotations"]["summary"], rule["name"]
        if rule["name"] in PER_BOOK:
            assert "$labels.symbol" in rule["annotations"]["summary"], rule["name"]
            assert "$labels.symbol" in rule["annotations"]["description"], rule["name"]
        if rule["name"] in PER_VENUE:
            assert "$labels.symbol" not in rule["annotations"]["summary"], rule["name"]
        if rule["name"] in PER_PROCESS_RELAY:
            assert "$labels.instance" in rule["annotations"]["summary"], rule["name"]


def test_a_symbol_left_out_by_a_venue_does_not_page(loaded_rules: list[dict[str, Any]]) -> None:
    """Served from the other venues, it is worth knowing, not waking anyone: info, not warning or critical."""
    severities = {rule["name"]: rule["labels"]["severity"] for rule in loaded_rules}
    assert severities["OrderbookSymbolNotListed"] == "info"
    assert [name for name, severity in severities.items() if severity == "info"] == ["OrderbookSymbolNotListed"]


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


def buckets(name: str, per_step: dict[str, int], steps: int, **labels: str) -> list[dict[str, str]]:
    """Cumulative histogram buckets growing by ``per_step`` observations each step (``le`` -> count <= le)."""
    return [series(f"{name}_bucket", f"0+{count}x{steps}", le=le, **labels) for le, count in per_step.items()]


def expect(alert: str, at: str, *firing: dict[str, str]) -> dict[str, Any]:
    return {"alertname": alert, "eval_time": at, "exp_alerts": [{"exp_labels": labels} for labels in firing]}


def critical(**labels: str) -> dict[str, str]:
    return {**SERVICE, **labels, "severity": "critical"}


def warning(**labels: str) -> dict[str, str]:
    return {**labels, "severity": "warning"}


def info(**labels: str) -> dict[str, str]:
    return {**SERVICE, **labels, "severity": "info"}


def book(name: str, values: str, exchange: str, symbol: str, **labels: str) -> dict[str, str]:
    """A series of one venue's book of one symbol."""
    return series(name, values, exchange=exchange, symbol=symbol, **labels)


def joined(*parts: str) -> str:
    """Series values written in pieces (each ``a``, ``a+bxN`` or ``axN`` as promtool reads them)."""
    return " ".join(parts)


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


def listed(*books: tuple[str, str], steps: int, values: str = "") -> list[dict[str, str]]:
    """orderbook_exchange_lists_symbol of each (exchange, symbol): 1 (listed) throughout, unless ``values``."""
    return [book("orderbook_exchange_lists_symbol", values or f"1x{steps}", exchange, symbol)
            for exchange, symbol in books]


EXCHANGE_HEALTH = {
    "interval": "10s",
    "input_series": [
        # connected counts the venue's connections: 2 while a connection is handed over, make-before-break
        series("orderbook_exchange_connected", "1 2 1x10", exchange="binance"),
        series("orderbook_exchange_connected", "1 1 0x10", exchange="bitstamp"),  # down from 20 s
        *listed(("binance", "ETHBTC"), ("binance", "BTCUSDT"), ("bitstamp", "ETHBTC"), ("bitstamp", "BTCUSDT"),
                steps=12),
        book("orderbook_exchange_in_step", "1x12", "binance", "ETHBTC"),
        book("orderbook_exchange_in_step", "1x12", "binance", "BTCUSDT"),
        book("orderbook_exchange_in_step", "1 1 1 0x9", "bitstamp", "ETHBTC"),  # out of step from 30 s
        book("orderbook_exchange_in_step", "1 1 1 0x9", "bitstamp", "BTCUSDT"),
    ],
    "alert_rule_test": [
        expect("OrderbookExchangeDisconnected", "40s"),  # 20 s down: pending
        expect("OrderbookExchangeDisconnected", "60s", critical(exchange="bitstamp")),  # once, not once a symbol
        expect("OrderbookExchangeOutOfStep", "50s"),
        expect("OrderbookExchangeOutOfStep", "70s", critical(exchange="bitstamp", symbol="BTCUSDT"),
               critical(exchange="bitstamp", symbol="ETHBTC")),
    ],
}

OUT_OF_STEP_ONE_OF_TWO = {
    "interval": "10s",
    "input_series": [
        series("orderbook_exchange_connected", "1x12", exchange="binance"),
        *listed(("binance", "ETHBTC"), ("binance", "BTCUSDT"), steps=12),
        book("orderbook_exchange_in_step", "1x12", "binance", "ETHBTC"),
        book("orderbook_exchange_in_step", "1 1 1 0x9", "binance", "BTCUSDT"),  # rebuilt at 30 s, never back
    ],
    "alert_rule_test": [
        expect("OrderbookExchangeOutOfStep", "40s"),
        expect("OrderbookExchangeOutOfStep", "70s", critical(exchange="binance", symbol="BTCUSDT")),
        expect("OrderbookExchangeDisconnected", "70s"),
    ],
}

# After a reconnect every book of the venue is rebuilt, and they come back one snapshot at a time (the venue's REST
# budget paces them: Binance about one a second). Here A..D come back 10, 30, 50 and 70 s after the reconnect at
# 60 s (D is out of step for 70 s) and fire nothing; E never comes back and fires once the others are all back.
CATCH_UP = {
    "interval": "10s",
    "input_series": [
        series("orderbook_exchange_connected", "1x30", exchange="binance"),
        *listed(*(("binance", symbol) for symbol in "ABCDE"), steps=30),
        book("orderbook_exchange_in_step", "1x5 0 1x24", "binance", "A"),
        book("orderbook_exchange_in_step", "1x5 0x2 1x22", "binance", "B"),
        book("orderbook_exchange_in_step", "1x5 0x4 1x20", "binance", "C"),
        book("orderbook_exchange_in_step", "1x5 0x6 1x18", "binance", "D"),
        book("orderbook_exchange_in_step", "1x5 0x25", "binance", "E"),
    ],
    "alert_rule_test": [
        expect("OrderbookExchangeOutOfStep", "100s"),
        expect("OrderbookExchangeOutOfStep", "150s"),
        expect("OrderbookExchangeOutOfStep", "170s"),
        expect("OrderbookExchangeOutOfStep", "250s", critical(exchange="binance", symbol="E")),
    ],
}

# A book that never comes back while another book of its venue keeps being rebuilt and coming back (every 40 s):
# the catch-up rule would hold it back for ever; out of step for 10 minutes, it fires whatever the others do.
STUCK_AMONG_FLAPPING = {
    "interval": "10s",
    "input_series": [
        series("orderbook_exchange_connected", "1x90", exchange="binance"),
        *listed(("binance", "STUCK"), ("binance", "FLAPPING"), steps=90),
        book("orderbook_exchange_in_step", "1x5 0x85", "binance", "STUCK"),  # out of step from 60 s
        book("orderbook_exchange_in_step", joined(*["1 1 1 0"] * 23), "binance", "FLAPPING"),
    ],
    "alert_rule_test": [
        expect("OrderbookExchangeOutOfStep", "300s"),
        expect("OrderbookExchangeOutOfStep", "630s"),
        expect("OrderbookExchangeOutOfStep", "720s", critical(exchange="binance", symbol="STUCK")),
    ],
}

# The service follows BNBBTC and ETHBTC; Bitstamp does not list BNBBTC: its book there is never in step, which is
# no fault, and the left-out symbol is an info alert, not a page.
NOT_LISTED = {
    "interval": "10s",
    "input_series": [
        series("orderbook_exchange_connected", "1x70", exchange="binance"),
        series("orderbook_exchange_connected", "1x70", exchange="bitstamp"),
        *listed(("binance", "BNBBTC"), ("binance", "ETHBTC"), ("bitstamp", "ETHBTC"), steps=70),
        *listed(("bitstamp", "BNBBTC"), steps=70, values="1 0x69"),  # left out once the venue said so
        book("orderbook_exchange_in_step", "0 1x69", "binance", "BNBBTC"),
        book("orderbook_exchange_in_step", "0 1x69", "binance", "ETHBTC"),
        book("orderbook_exchange_in_step", "0 1x69", "bitstamp", "ETHBTC"),
        book("orderbook_exchange_in_step", "0x70", "bitstamp", "BNBBTC"),
    ],
    "alert_rule_test": [
        expect("OrderbookExchangeOutOfStep", "60s"),
        expect("OrderbookExchangeOutOfStep", "690s"),  # 10 minutes out of step, but not listed there
        expect("OrderbookSymbolNotListed", "40s"),  # pending for a minute
        expect("OrderbookSymbolNotListed", "90s", info(exchange="bitstamp", symbol="BNBBTC")),
    ],
}

# The service follows BNBBTC alone, which Bitstamp does not list: Bitstamp has nothing to connect for.
LISTS_NONE = {
    "interval": "10s",
    "input_series": [
        series("orderbook_exchange_connected", "1x30", exchange="binance"),
        series("orderbook_exchange_connected", "0x30", exchange="bitstamp"),
        *listed(("binance", "BNBBTC"), steps=30),
        *listed(("bitstamp", "BNBBTC"), steps=30, values="0x30"),
        book("orderbook_exchange_in_step", "1x30", "binance", "BNBBTC"),
        book("orderbook_exchange_in_step", "0x30", "bitstamp", "BNBBTC"),
    ],
    "alert_rule_test": [
        expect("OrderbookExchangeDisconnected", "200s"),
        expect("OrderbookExchangeOutOfStep", "200s"),
        expect("OrderbookSymbolNotListed", "200s", info(exchange="bitstamp", symbol="BNBBTC")),
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

RECONNECT_SYMBOLS = [f"SYM{index}" for index in range(12)]

REBUILD_STORM = {
    "interval": "30s",
    "input_series": [
        book("orderbook_book_rebuilds_total", "0+3x20", "binance", "ETHBTC", reason="gap"),  # 6 a minute
        book("orderbook_book_rebuilds_total", "0+0.45x20", "binance", "BTCUSDT", reason="gap"),  # 0.9 a minute
        # One reconnect at 2 minutes rebuilds each of Bitstamp's 12 books once: 12 rebuilds in 5 minutes for the
        # venue, one for each book. No book is rebuilt over and over: nothing fires.
        *(book("orderbook_book_rebuilds_total", "0x3 1x17", "bitstamp", symbol, reason="disconnect")
          for symbol in RECONNECT_SYMBOLS),
    ],
    "alert_rule_test": [
        expect("OrderbookRebuildStorm", "1m"),
        expect("OrderbookRebuildStorm", "5m", warning(instance="svc:9102", exchange="binance", symbol="ETHBTC")),
        expect("OrderbookRebuildStorm", "8m", warning(instance="svc:9102", exchange="binance", symbol="ETHBTC")),
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

RECORD_DROPPED = {
    "interval": "1m",
    "input_series": [
        # A full disk for 3 minutes from the 5th, then writing again; queue_full never moves.
        series("orderbook_record_dropped_total", "0x5 100 200 300 300x30", reason="write_failed"),
        series("orderbook_record_dropped_total", "0x40", reason="queue_full"),
    ],
    "alert_rule_test": [
        expect("OrderbookRecordDropped", "5m"),
        expect("OrderbookRecordDropped", "8m", warning(instance="svc:9102", job="orderbook", reason="write_failed")),
        expect("OrderbookRecordDropped", "20m"),  # none in the last 5 minutes
    ],
}


AUDITS = {
    "interval": "1m",
    "input_series": [
        *(book("orderbook_exchange_in_step", "1x80", exchange, symbol)
          for exchange in ("binance", "bitstamp") for symbol in ("ETHBTC", "BTCUSDT")),
        # bitstamp ETHBTC: one divergent audit at minute 5; BTCUSDT: matches, then skipped from minute 10 while
        # ETHBTC's go on (passed over: its own audits fail)
        book("orderbook_audits_total", "0 0 0 0 0 1x80", "bitstamp", "ETHBTC", result="divergent"),
        book("orderbook_audits_total", "0+1x80", "bitstamp", "ETHBTC", result="match"),
        book("orderbook_audits_total", "0+1x10 10x70", "bitstamp", "BTCUSDT", result="match"),
        book("orderbook_audits_total", "0x10 1+1x70", "bitstamp", "BTCUSDT", result="skipped"),
        book("orderbook_audit_last_age_seconds", "30x80", "bitstamp", "ETHBTC"),
        book("orderbook_audit_last_age_seconds", "30x10 90+60x70", "bitstamp", "BTCUSDT"),
        # binance: matches only, but the venue's audits stop at minute 10 (its REST budget busy)
        book("orderbook_audits_total", "0+1x10 10x70", "binance", "ETHBTC", result="match"),
        book("orderbook_audits_total", "0+1x10 10x70", "binance", "BTCUSDT", result="match"),
        book("orderbook_audit_last_age_seconds", "30x10 90+60x70", "binance", "ETHBTC"),
        book("orderbook_audit_last_age_seconds", "20x10 80+60x70", "binance", "BTCUSDT"),
    ],
    "alert_rule_test": [
        expect("OrderbookAuditDivergence", "3m"),
        expect("OrderbookAuditDivergence", "8m", {**SERVICE, "exchange": "bitstamp", "symbol": "ETHBTC",
                                                  "result": "divergent", "severity": "warning"}),
        expect("OrderbookAuditDivergence", "70m"),  # an hour after, with no other
        expect("OrderbookAuditOverdue", "20m"),  # 15 minutes old at minute 24
        expect("OrderbookAuditOverdue", "31m", *(
            {**SERVICE, "exchange": exchange, "symbol": symbol, "severity": "warning"}
            for exchange, symbol in (("binance", "BTCUSDT"), ("binance", "ETHBTC"), ("bitstamp", "BTCUSDT")))),
        # Binance has audited nothing for 50 minutes: no rate to measure its rounds by, and still overdue.
        expect("OrderbookAuditOverdue", "60m", *(
            {**SERVICE, "exchange": exchange, "symbol": symbol, "severity": "warning"}
            for exchange, symbol in (("binance", "BTCUSDT"), ("binance", "ETHBTC"), ("bitstamp", "BTCUSDT")))),
    ],
}


def rotation(books: int, every: int, steps: int, passed_over: int, from_step: int) -> list[dict[str, str]]:
    """Binance auditing its ``books`` (S0, S1, ...) in turn, one every ``every`` steps: S0 at step 0, S1 at
    ``every``...; each book's audit age is a sawtooth a round long. From ``from_step`` on, the audits of book
    ``passed_over`` are skipped at its turns, so its age grows on."""
    last = {index: (index - books) * every for index in range(books)}  # each book's last audit, before step 0
    ages: dict[int, list[int]] = {index: [] for index in range(books)}
    counts = {(index, result): [0] for index in range(books) for result in ("match", "skipped")}
    for step in range(steps + 1):
        turn = step // every % books if step % every == 0 else None
        for index in range(books):
            result = None
            if index == turn:
                result = "skipped" if index == passed_over and step >= from_step else "match"
                if result == "match":
                    last[index] = step
            for key in ("match", "skipped"):
                counts[(index, key)].append(counts[(index, key)][-1] + (result == key))
            ages[index].append((step - last[index]) * 60 + 20)
    made = []
    for index in range(books):
        symbol = f"S{index}"
        made.append(book("orderbook_exchange_in_step", f"1x{steps}", "binance", symbol))
        made.append(book("orderbook_audit_last_age_seconds", joined(*map(str, ages[index])), "binance", symbol))
        for key in ("match", "skipped"):
            made.append(book("orderbook_audits_total", joined(*map(str, counts[(index, key)][1:])), "binance", symbol,
                             result=key))
    return made


# Many books, few audits: Binance's audits take a tenth of its request weight (12 1,000-level snapshots a minute),
# so 200 symbols are each audited about every 17 minutes. Here 4 books, one audit every 5 minutes: each book is
# 20 minutes old at its turn, and none is overdue; from minute 60, S3's audits are skipped at each of its turns
# while the others go on, and it alone fires once three rounds (an hour) have passed.
AUDIT_ROTATION = {
    "interval": "1m",
    "input_series": rotation(books=4, every=5, steps=160, passed_over=3, from_step=60),
    "alert_rule_test": [
        expect("OrderbookAuditOverdue", "50m"),
        expect("OrderbookAuditOverdue", "100m"),
        expect("OrderbookAuditOverdue", "150m", {**SERVICE, "exchange": "binance", "symbol": "S3",
                                                 "severity": "warning"}),
    ],
}

# However many books share the venue's audits, one not audited for two hours fires: here five books, one audit a
# quarter of an hour (a round of 75 minutes, three rounds would be 3 h 45), and S0 older than two hours.
AUDIT_TWO_HOURS = {
    "interval": "5m",
    "input_series": [
        *(book("orderbook_exchange_in_step", "1x40", "bitstamp", f"S{index}") for index in range(5)),
        book("orderbook_audits_total", "0+0.333333x40", "bitstamp", "S1", result="match"),
        book("orderbook_audit_last_age_seconds", "6000+300x40", "bitstamp", "S0"),
        *(book("orderbook_audit_last_age_seconds", "60x40", "bitstamp", f"S{index}") for index in range(1, 5)),
    ],
    "alert_rule_test": [
        expect("OrderbookAuditOverdue", "20m"),  # 7,200 s: not over two hours yet
        expect("OrderbookAuditOverdue", "40m", {**SERVICE, "exchange": "bitstamp", "symbol": "S0",
                                                "severity": "warning"}),
    ],
}

# -- the relay ---------------------------------------------------------------------------------------------------
# Book nodes (job orderbook) started with --publish, and edges (job orderbook-edge). A node's target that goes down
# leaves its series stale (promtool's "stale" is the marker Prometheus writes when a scrape fails).

NODE_A = {"instance": "a:9102", "job": "orderbook"}
NODE_B = {"instance": "b:9102", "job": "orderbook"}
NODE_C = {"instance": "c:9102", "job": "orderbook"}
EDGE_1 = {"instance": "e1:9103", "job": "orderbook-edge"}
EDGE_2 = {"instance": "e2:9103", "job": "orderbook-edge"}
EDGE_3 = {"instance": "e3:9103", "job": "orderbook-edge"}


def of(process: dict[str, str], name: str, values: str, **labels: str) -> dict[str, str]:
    """A series of one book node or edge."""
    return series(name, values, **process, **labels)


def no_leader() -> dict[str, str]:
    return {"severity": "critical"}  # one alert for the deployment, whatever the number of nodes


# The leader steps down at 30 s (it lost Redis) and no standby takes over until 65 s: no leader for 35 s.
RELAY_LEADER_LOST = {
    "interval": "5s",
    "input_series": [
        of(NODE_A, "up", "1x40"),
        of(NODE_B, "up", "1x40"),
        of(NODE_A, "orderbook_relay_leader", "1x5 0x35"),
        of(NODE_B, "orderbook_relay_leader", "0x12 1x27"),
    ],
    "alert_rule_test": [
        expect("OrderbookRelayNoLeader", "20s"),
        expect("OrderbookRelayNoLeader", "40s"),  # pending for 15 s
        expect("OrderbookRelayNoLeader", "50s", no_leader()),
        expect("OrderbookRelayNoLeader", "70s"),  # b leads
    ],
}

# A takeover: the lease lapses (2 s) and a standby takes it within a tick; a scrape or two see no leader.
RELAY_TAKEOVER = {
    "interval": "5s",
    "input_series": [
        of(NODE_A, "up", "1x30"),
        of(NODE_B, "up", "1x30"),
        of(NODE_A, "orderbook_relay_leader", "1x5 0x25"),
        of(NODE_B, "orderbook_relay_leader", "0x7 1x23"),  # no leader at 30 and 35 s
    ],
    "alert_rule_test": [
        expect("OrderbookRelayNoLeader", "30s"),
        expect("OrderbookRelayNoLeader", "50s"),
        expect("OrderbookRelayNoLeader", "2m"),
    ],
}

# Every book node that published stops answering its scrapes at 30 s (killed, or its host gone): none reports
# orderbook_relay_leader any more, so no sum can be 0, yet no one leads.
RELAY_NODES_DOWN = {
    "interval": "5s",
    "input_series": [
        of(NODE_A, "up", "1x5 0x40"),
        of(NODE_B, "up", "1x5 0x40"),
        of(NODE_A, "orderbook_relay_leader", "1x5 stale"),
        of(NODE_B, "orderbook_relay_leader", "0x5 stale"),
    ],
    "alert_rule_test": [
        expect("OrderbookRelayNoLeader", "40s"),
        expect("OrderbookRelayNoLeader", "50s", no_leader()),
        expect("OrderbookRelayNoLeader", "3m", no_leader()),
    ],
}

# Two shards: shard a keeps its leader; every node of shard b stops answering at 30 s, while shard c's leader
# steps down (its lease lost) and no standby takes over. The alert names each shard without a leader, alone.
RELAY_SHARD_WITHOUT_LEADER = {
    "interval": "5s",
    "input_series": [
        of(NODE_A, "up", "1x40"),
        of(NODE_B, "up", "1x5 0x40"),
        of(NODE_C, "up", "1x40"),
        of(NODE_A, "orderbook_relay_leader", "1x40", shard="a"),
        of(NODE_B, "orderbook_relay_leader", "1x5 stale", shard="b"),
        of(NODE_C, "orderbook_relay_leader", "1x5 0x35", shard="c"),
    ],
    "alert_rule_test": [
        expect("OrderbookRelayNoLeader", "20s"),
        expect("OrderbookRelayNoLeader", "1m", {"severity": "critical", "shard": "b"},
               {"severity": "critical", "shard": "c"}),
    ],
}

# A leader, two standbys, one of them down since 30 s: the relay is fine.
RELAY_LEADER_PRESENT = {
    "interval": "5s",
    "input_series": [
        of(NODE_A, "up", "1x40"),
        of(NODE_B, "up", "1x40"),
        of(NODE_C, "up", "1x5 0x35"),
        of(NODE_A, "orderbook_relay_leader", "1x40"),
        of(NODE_B, "orderbook_relay_leader", "0x40"),
        of(NODE_C, "orderbook_relay_leader", "0x5 stale"),
    ],
    "alert_rule_test": [
        expect("OrderbookRelayNoLeader", "1m"),
        expect("OrderbookRelayNoLeader", "3m"),
    ],
}

# A deployment without --publish has no relay series at all, even when a book node goes down (that is
# OrderbookMetricsTargetDown's); nor has one whose only publishing node restarted without --publish.
RELAY_NOT_DEPLOYED = {
    "interval": "10s",
    "input_series": [
        of(NODE_A, "up", "1x3 0x20"),  # down from 30 s
        of(NODE_B, "up", "1x23"),
        of(NODE_A, "orderbook_exchange_connected", "1x3 stale", exchange="binance"),
        of(NODE_B, "orderbook_exchange_connected", "1x23", exchange="binance"),
    ],
    "alert_rule_test": [
        *(expect(alert, at) for at in ("1m", "3m") for alert in sorted(RELAY_ALERTS)),
        expect("OrderbookMetricsTargetDown", "3m", {**NODE_A, "severity": "critical"}),
    ],
}

RELAY_PUBLISH_DROPPED = {
    "interval": "10s",
    "input_series": [
        of(NODE_A, "up", "1x3 0 1x20"),  # restarted at 30 s, now without --publish
        of(NODE_A, "orderbook_relay_leader", "1x3 stale"),
    ],
    "alert_rule_test": [
        expect("OrderbookRelayNoLeader", "1m"),
        expect("OrderbookRelayNoLeader", "3m"),
    ],
}

# Two book nodes take the lease from each other every minute: the fourth takeover in 10 minutes (at 4 minutes)
# fires a minute later; it ends 10 minutes after they stop (at 6 minutes).
TAKEOVER_STORM = {
    "interval": "1m",
    "input_series": [
        of(NODE_A, "orderbook_relay_takeovers_total", "0 0 1 1 2 2 3x30"),
        of(NODE_B, "orderbook_relay_takeovers_total", "0 1 1 2 2 3 3x30"),
    ],
    "alert_rule_test": [
        expect("OrderbookRelayTakeoverStorm", "3m"),  # three
        expect("OrderbookRelayTakeoverStorm", "6m", warning()),
        expect("OrderbookRelayTakeoverStorm", "10m", warning()),
        expect("OrderbookRelayTakeoverStorm", "20m"),
    ],
}

# A rolling restart of three book nodes: each restart of the leader is a takeover by another (three in all),
# and a restarted node's counter starts again from 0.
ROLLING_RESTART = {
    "interval": "1m",
    "input_series": [
        of(NODE_A, "orderbook_relay_takeovers_total", "1 1 0 0 0 0 1x20"),  # restarted at 2m; leads again at 6m
        of(NODE_B, "orderbook_relay_takeovers_total", "0 0 1 1 0x22"),  # leads at 2m; restarted at 4m
        of(NODE_C, "orderbook_relay_takeovers_total", "0 0 0 0 1 1 0x20"),  # leads at 4m; restarted at 6m
    ],
    "alert_rule_test": [
        expect("OrderbookRelayTakeoverStorm", at) for at in ("5m", "7m", "9m", "11m")
    ],
}

# e1 loses its source at 30 s; e2 misses it for one scrape; e3 has never heard a leader since it started.
EDGE_WITHOUT_SOURCE = {
    "interval": "10s",
    "input_series": [
        of(EDGE_1, "orderbook_relay_source_up", "1x3 0x10"),
        of(EDGE_2, "orderbook_relay_source_up", "1x4 0 1x8"),
        of(EDGE_3, "orderbook_relay_source_up", "0x13"),
    ],
    "alert_rule_test": [
        expect("OrderbookEdgeWithoutSource", "20s"),
        expect("OrderbookEdgeWithoutSource", "40s", {**EDGE_3, "severity": "critical"}),
        expect("OrderbookEdgeWithoutSource", "70s", {**EDGE_1, "severity": "critical"},
               {**EDGE_3, "severity": "critical"}),
    ],
}

# Node a cannot reach Redis from 30 s; edge e2 for 20 s only (a Redis restart).
RELAY_REDIS_DOWN = {
    "interval": "10s",
    "input_series": [
        of(NODE_A, "orderbook_relay_redis_connected", "1x3 0x10"),
        of(EDGE_1, "orderbook_relay_redis_connected", "1x13"),
        of(EDGE_2, "orderbook_relay_redis_connected", "1x4 0 0 1x6"),
    ],
    "alert_rule_test": [
        expect("OrderbookRelayRedisDown", "40s"),
        expect("OrderbookRelayRedisDown", "70s", {**NODE_A, "severity": "warning"}),
    ],
}

# Every hop of e1 in (0.1, 0.25] (p99 0.2485 s); every hop of e2 in (0.002, 0.005] (p99 0.00497 s).
RELAY_HOP_SLOW = {
    "interval": "30s",
    "input_series": [
        *buckets("orderbook_relay_hop_seconds", {"0.1": 0, "0.25": 10, "+Inf": 10}, 20, **EDGE_1),
        *buckets("orderbook_relay_hop_seconds", {"0.002": 0, "0.005": 10, "+Inf": 10}, 20, **EDGE_2),
    ],
    "alert_rule_test": [
        expect("OrderbookRelayHopLatencyHigh", "2m"),
        expect("OrderbookRelayHopLatencyHigh", "8m", warning(instance="e1:9103")),
    ],
}

# Edge e1 refuses a malformed envelope at 2 minutes and two more at 3, e2 nothing; node a counts a node of another
# deployment at 2 minutes (the other alert's). The warning holds while the last 5 minutes had a refusal.
RELAY_REJECTED = {
    "interval": "30s",
    "input_series": [
        of(EDGE_1, "orderbook_relay_rejected_total", "0x3 1 1 3x30", reason="malformed"),
        of(EDGE_2, "orderbook_relay_rejected_total", "0x35", reason="bad_mac"),
        of(NODE_A, "orderbook_relay_rejected_total", "0x3 1x32", reason="other_deployment"),
    ],
    "alert_rule_test": [
        expect("OrderbookRelayRejectedValues", "1m"),
        expect("OrderbookRelayRejectedValues", "4m", warning(**EDGE_1, reason="malformed")),
        expect("OrderbookRelayRejectedValues", "12m"),  # none in the last 5 minutes
    ],
}

# A book node of another deployment refuses to join at 2 minutes (it exits at once, never scraped): node a, which
# leads, saw it in the reports and counts it; b's bad lease is the other alert's.
OTHER_DEPLOYMENT = {
    "interval": "30s",
    "input_series": [
        of(NODE_A, "orderbook_relay_rejected_total", "0x3 1x40", reason="other_deployment"),
        of(NODE_B, "orderbook_relay_rejected_total", "0x43", reason="other_deployment"),
        of(NODE_B, "orderbook_relay_rejected_total", "0x3 5x40", reason="bad_lease"),
    ],
    "alert_rule_test": [
        expect("OrderbookRelayOtherDeployment", "1m"),
        expect("OrderbookRelayOtherDeployment", "3m", {**NODE_A, "severity": "critical"}),
        expect("OrderbookRelayOtherDeployment", "15m"),  # none in the last 10 minutes
    ],
}

# A down edge exports nothing, so no relay alert can fire for it: its scrape's up does.
EDGE_TARGET_DOWN = {
    "interval": "10s",
    "input_series": [
        of(NODE_A, "up", "1x14"),
        of(EDGE_1, "up", "1 1 0x12"),  # down from 20 s
        of(EDGE_2, "up", "1x14"),
    ],
    "alert_rule_test": [
        expect("OrderbookMetricsTargetDown", "70s"),
        expect("OrderbookMetricsTargetDown", "90s", {**EDGE_1, "severity": "critical"}),
    ],
}

# A connection fell behind Binance once at 30 s (its books out of the merged book until it caught up); a task
# failed twice at 20 s and 40 s and was restarted each time.
BEHIND_AND_FAILING = {
    "interval": "10s",
    "input_series": [
        series("orderbook_exchange_behind_total", "0 0 0 1x40", exchange="binance"),
        series("orderbook_exchange_behind_total", "0x43", exchange="bitstamp"),
        series("orderbook_task_failures_total", "0 0 1 1 2x40", task="binance connection"),
        series("orderbook_task_failures_total", "0x44", task="relay_election"),
    ],
    "alert_rule_test": [
        expect("OrderbookExchangeBehind", "20s"),
        expect("OrderbookExchangeBehind", "50s", warning(**SERVICE, exchange="binance")),
        expect("OrderbookExchangeBehind", "7m"),  # caught up: no new episode in 5 minutes
        expect("OrderbookTaskFailing", "10s"),
        expect("OrderbookTaskFailing", "40s", warning(**SERVICE, task="binance connection")),
        expect("OrderbookTaskFailing", "12m"),
    ],
}

CASES = {
    "behind-and-failing": BEHIND_AND_FAILING,
    "exchange-health": EXCHANGE_HEALTH,
    "out-of-step-one-of-two-symbols": OUT_OF_STEP_ONE_OF_TWO,
    "out-of-step-catch-up": CATCH_UP,
    "out-of-step-stuck-among-flapping": STUCK_AMONG_FLAPPING,
    "symbol-not-listed": NOT_LISTED,
    "venue-lists-no-symbol": LISTS_NONE,
    "target-down": TARGET_DOWN,
    "rebuild-storm": REBUILD_STORM,
    "stale-book": STALE_BOOK,
    "frame-to-publish": SLOW_FRAME_TO_PUBLISH,
    "publish-to-send": SLOW_PUBLISH_TO_SEND,
    "serving-process-restarts": SERVING_PROCESS_RESTARTS,
    "record-dropped": RECORD_DROPPED,
    "audits": AUDITS,
    "audit-rotation": AUDIT_ROTATION,
    "audit-two-hours": AUDIT_TWO_HOURS,
    "relay-leader-lost": RELAY_LEADER_LOST,
    "relay-takeover": RELAY_TAKEOVER,
    "relay-shard-without-leader": RELAY_SHARD_WITHOUT_LEADER,
    "relay-nodes-down": RELAY_NODES_DOWN,
    "relay-leader-present": RELAY_LEADER_PRESENT,
    "relay-not-deployed": RELAY_NOT_DEPLOYED,
    "relay-publish-dropped": RELAY_PUBLISH_DROPPED,
    "relay-takeover-storm": TAKEOVER_STORM,
    "relay-rolling-restart": ROLLING_RESTART,
    "edge-without-source": EDGE_WITHOUT_SOURCE,
    "relay-redis-down": RELAY_REDIS_DOWN,
    "relay-hop-slow": RELAY_HOP_SLOW,
    "relay-rejected": RELAY_REJECTED,
    "relay-other-deployment": OTHER_DEPLOYMENT,
    "edge-target-down": EDGE_TARGET_DOWN,
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_alert_fires_when_and_only_when_it_should(
    case: dict[str, Any], loaded_rules: list[dict[str, Any]], promtool_bin: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(rules_file(loaded_rules)))
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps({"rule_files": [str(rules)], "evaluation_interval": "10s", "tests": [case]}))
    result = promtool(promtool_bin, "test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr
