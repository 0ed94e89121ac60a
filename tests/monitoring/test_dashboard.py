"""monitoring/grafana/dashboard.json: provisionable, every query valid PromQL over metrics the service exports,
every exported metric on some panel, and every query answered by a real Prometheus scraping the service: a book
node, and a relay's book node and edge."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from prom_tools import PrometheusApi, promtool
from promql_names import metric_names

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_BUILTINS = {"__rate_interval": "5s", "__interval": "5s", "__range": "1h"}
VARIABLE = re.compile(r"\$\{(\w+)[^}]*\}|\$(\w+)")
LABEL_VALUES = re.compile(r"label_values\(\s*([^,]+),\s*(\w+)\s*\)")
LATENCY_HISTOGRAMS = (
    "orderbook_exchange_event_to_applied_seconds",
    "orderbook_frame_to_publish_seconds",
    "orderbook_publish_to_send_seconds",
    "orderbook_relay_hop_seconds",
)
JOBS = 'job=~"orderbook|orderbook-edge"'
"""Book nodes and edges: the instance selector lists both, and the panels of metrics every process has show both."""
RELAY_STATES = {
    "orderbook_relay_leader": {"Standby", "Leader"},
    "orderbook_relay_redis_connected": {"Unreachable", "Connected"},
    "orderbook_relay_source_up": {"No source", "Serving"},
}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def as_promql(expr: str, dashboard_variables: dict[str, dict[str, Any]]) -> str:
    """What Grafana sends for "All": built-in intervals become durations, each selection its allValue."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        return dashboard_variables[name]["allValue"]

    return VARIABLE.sub(value, expr)


def test_dashboard_is_provisionable(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "orderbook-service"
    assert dashboard.get("id") is None  # Grafana assigns ids; a fixed one clashes across instances
    assert dashboard["title"]
    source = variables(dashboard)["datasource"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")


def test_every_query_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    with_queries = [panel for panel in panels(dashboard) if panel.get("targets")]
    assert with_queries
    for panel in with_queries:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"]), panel["title"]
    for variable in variables(dashboard).values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def test_panels_have_unique_ids_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    all_panels = list(panels(dashboard))
    ids = [panel["id"] for panel in all_panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_queries_use_only_defined_variables(dashboard: dict[str, Any]) -> None:
    defined = set(variables(dashboard)) | set(GRAFANA_BUILTINS)
    used = {m.group(1) or m.group(2) for expr in exprs(dashboard) for m in VARIABLE.finditer(expr)}
    assert used, "the panels should filter by the instance and exchange variables"
    assert used <= defined


def test_queries_name_only_exported_metrics(dashboard: dict[str, Any], exported_names: set[str]) -> None:
    unknown = {expr: metric_names(expr) - exported_names - {"up"} for expr in exprs(dashboard)}
    assert {expr: names for expr, names in unknown.items() if names} == {}
    assert all(metric_names(expr) for expr in exprs(dashboard))


def test_variable_queries_name_exported_metrics(dashboard: dict[str, Any], exported_names: set[str]) -> None:
    queries = [v["query"]["query"] for v in variables(dashboard).values() if v["type"] == "query"]
    assert queries
    for query in queries:
        match = LABEL_VALUES.fullmatch(query)
        assert match, query
        assert metric_names(match.group(1)) <= exported_names | {"up"}, query


def test_every_exported_metric_is_on_a_panel(dashboard: dict[str, Any], service_registry: CollectorRegistry,
                                            relay_expositions: dict[str, str]) -> None:
    """The service's families (the exercised registry drives each), and the relay's: a book node's with --publish,
    an edge's. A live node's families with nothing to count yet have no samples (the registry's have), and parsed
    text gives some ``_created`` series a family of their own: neither is a metric to draw."""
    used = set().union(*(metric_names(expr) for expr in exprs(dashboard)))
    families = [*service_registry.collect(),
                *(family for text in relay_expositions.values() for family in text_string_to_metric_families(text))]
    missing = []
    for family in families:
        series = {sample.name for sample in family.samples if not sample.name.endswith("_created")}
        if series and not series & used:  # test_exposition.py checks the registry's families all have samples
            missing.append(family.name)
    assert missing == []


def test_instance_selector_lists_book_nodes_and_edges(dashboard: dict[str, Any]) -> None:
    instance = variables(dashboard)["instance"]
    assert instance["query"]["query"] == instance["definition"] == f"label_values(up{{{JOBS}}}, instance)"
    assert [expr for expr in exprs(dashboard) if "job=" in expr and JOBS not in expr] == []


@pytest.mark.parametrize("gauge", RELAY_STATES)
def test_relay_state_panels_name_their_states(dashboard: dict[str, Any], gauge: str) -> None:
    """Leader or Standby, Connected or Unreachable, Serving or No source: 0 and 1 read as what they mean."""
    showing = [panel for panel in panels(dashboard)
               if any(metric_names(target["expr"]) == {gauge} for target in panel.get("targets", []))]
    assert len(showing) == 1, [panel["title"] for panel in showing]
    texts = {option["text"] for mapping in showing[0]["fieldConfig"]["defaults"]["mappings"]
             for option in mapping["options"].values()}
    assert (showing[0]["type"], texts) == ("state-timeline", RELAY_STATES[gauge])


def test_relay_panels_are_in_a_relay_row(dashboard: dict[str, Any]) -> None:
    """Every panel of an orderbook_relay_* metric sits below the Relay row, and nothing else does."""
    rows = [panel for panel in dashboard["panels"] if panel["type"] == "row"]
    (relay,) = [row for row in rows if row["title"] == "Relay"]
    below = [row["gridPos"]["y"] for row in rows if row["gridPos"]["y"] > relay["gridPos"]["y"]]
    end = min(below, default=float("inf"))
    for panel in panels(dashboard):
        names = set().union(*(metric_names(target["expr"]) for target in panel.get("targets", [])))
        in_row = relay["gridPos"]["y"] < panel["gridPos"]["y"] < end
        assert in_row == any(name.startswith("orderbook_relay_") for name in names), panel["title"]


def symbol_labelled(registry: CollectorRegistry) -> set[str]:
    """The series names (suffixes included) that carry a ``symbol`` label."""
    return {sample.name for family in registry.collect() for sample in family.samples if "symbol" in sample.labels}


def test_symbol_variable_lists_the_followed_symbols(dashboard: dict[str, Any]) -> None:
    symbol = variables(dashboard)["symbol"]
    assert (symbol["type"], symbol["multi"], symbol["includeAll"], symbol["allValue"]) == ("query", True, True, ".*")
    match = LABEL_VALUES.fullmatch(symbol["query"]["query"])
    assert match and match.group(2) == "symbol", symbol["query"]
    assert metric_names(match.group(1)) == {"orderbook_exchange_in_step"}
    assert symbol["definition"] == symbol["query"]["query"]


def test_per_symbol_metrics_are_filtered_by_the_symbol_variable(dashboard: dict[str, Any],
                                                               service_registry: CollectorRegistry) -> None:
    """Every selector of a metric with a symbol label follows the Symbol selector."""
    names = symbol_labelled(service_registry)
    assert {"orderbook_exchange_in_step", "orderbook_spread", "orderbook_book_rebuilds_total"} <= names
    unfiltered = []
    for expr in exprs(dashboard):
        for name in metric_names(expr) & names:
            selectors = re.findall(rf"\b{name}\b(\{{[^}}]*\}})?", expr)
            unfiltered += [(name, expr) for matchers in selectors if 'symbol=~"$symbol"' not in matchers]
    assert unfiltered == []


def test_a_panel_shows_each_symbols_venues_listed_and_in_step(dashboard: dict[str, Any]) -> None:
    """A table: a row per symbol, a column per venue, each cell listed / in step."""
    tables = [
        panel for panel in panels(dashboard)
        if panel["type"] == "table" and any(
            {"orderbook_exchange_lists_symbol", "orderbook_exchange_in_step"} <= metric_names(target["expr"])
            for target in panel["targets"])
    ]
    assert len(tables) == 1
    (matrix,) = [step["options"] for step in tables[0]["transformations"] if step["id"] == "groupingToMatrix"]
    assert (matrix["rowField"], matrix["columnField"]) == ("symbol", "exchange")
    texts = {option["text"] for mapping in tables[0]["fieldConfig"]["defaults"]["mappings"]
             for option in mapping["options"].values()}
    assert texts == {"Not listed", "Out of step", "In step"}


def test_connection_panels_read_as_a_count(dashboard: dict[str, Any]) -> None:
    """orderbook_exchange_connected counts the venue's connections: shown as a number, not mapped to up/down."""
    connected = [panel for panel in panels(dashboard)
                 if any("orderbook_exchange_connected" in metric_names(t["expr"]) for t in panel.get("targets", []))]
    assert connected
    for panel in connected:
        defaults = panel["fieldConfig"]["defaults"]
        assert panel["type"] == "timeseries", panel["title"]
        assert not defaults.get("mappings"), panel["title"]
        assert defaults["decimals"] == 0, panel["title"]


@pytest.mark.parametrize("histogram", LATENCY_HISTOGRAMS)
def test_latency_panels_show_p50_and_p99(dashboard: dict[str, Any], histogram: str) -> None:
    quantiles = {
        expr.split("(", 1)[1].split(",", 1)[0].strip()
        for expr in exprs(dashboard)
        if expr.startswith("histogram_quantile(") and f"{histogram}_bucket" in expr
    }
    assert quantiles == {"0.5", "0.99"}


def test_queries_are_valid_promql(dashboard: dict[str, Any], promtool_bin: str, tmp_path: Path) -> None:
    """promtool parses each query as a recording rule (it has no command that parses a bare expression)."""
    dashboard_variables = variables(dashboard)
    rules = [
        {"record": f"dashboard:query_{i}", "expr": as_promql(expr, dashboard_variables)}
        for i, expr in enumerate(exprs(dashboard))
    ]
    path = tmp_path / "dashboard-queries.json"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool(promtool_bin, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_every_query_returns_series_from_the_service(dashboard: dict[str, Any], kit_prometheus: PrometheusApi) -> None:
    dashboard_variables = variables(dashboard)
    empty = [expr for expr in exprs(dashboard) if not kit_prometheus.query(as_promql(expr, dashboard_variables))]
    assert empty == []
