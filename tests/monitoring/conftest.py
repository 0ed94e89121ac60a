"""Fixtures for the monitoring kit tests: Prometheus's tools, the service's real exposition, a real relay (book node
and edge) and its expositions, the kit's files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from prom_tools import MONITORING, PrometheusApi, ToolMissing, find_tool, prometheus_server, scrape_config
from relay_metrics import RelayDeployment
from service_metrics import exercised_registry, exposition, sample_names

from tests.support.waiting import wait_until


def _tool(name: str) -> str:
    try:
        return find_tool(name)
    except ToolMissing as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def promtool_bin(starts_processes: None) -> str:
    """promtool, installed if missing: the tests that use it run it."""
    return _tool("promtool")


@pytest.fixture(scope="session")
def prometheus_bin(starts_processes: None) -> str:
    """prometheus, installed if missing: the tests that use it start it."""
    return _tool("prometheus")


@pytest.fixture(scope="session")
def service_registry() -> CollectorRegistry:
    return exercised_registry()


@pytest.fixture(scope="session")
def service_exposition(service_registry: CollectorRegistry) -> str:
    return exposition(service_registry)


@pytest.fixture(scope="session")
def relay(starts_processes: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayDeployment]:
    """Redis, a book node publishing through it (the leader) and an edge following it, settled; for the session."""
    with RelayDeployment(tmp_path_factory.mktemp("relay")) as deployment:
        deployment.wait_settled()
        yield deployment


@pytest.fixture(scope="session")
def relay_expositions(relay: RelayDeployment) -> dict[str, str]:
    """The settled book node's and edge's /metrics: {"book node": text, "edge": text}."""
    return relay.expositions()


@pytest.fixture(scope="session")
def exported_names(service_exposition: str, relay_expositions: dict[str, str]) -> set[str]:
    """Every series name the service exports: a book node's (with and without --publish) and an edge's."""
    return sample_names(service_exposition).union(*map(sample_names, relay_expositions.values()))


@pytest.fixture(scope="session")
def dashboard() -> dict[str, Any]:
    return json.loads((MONITORING / "grafana" / "dashboard.json").read_text())


@pytest.fixture(scope="session")
def kit_prometheus(
    prometheus_bin: str, service_registry: CollectorRegistry, relay: RelayDeployment,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrometheusApi]:
    """A real Prometheus running the kit's config and rules, scraping every second the exercised registry and the
    relay's book node (job orderbook: a node without and one with --publish) and its edge (job orderbook-edge)."""
    httpd, thread = start_http_server(0, "127.0.0.1", registry=service_registry)
    try:
        workdir: Path = tmp_path_factory.mktemp("kit-prometheus")
        config = scrape_config("1s", [httpd.server_port, relay.node_port], [relay.edge_port])
        with prometheus_server(prometheus_bin, workdir, config, (MONITORING / "alerts.yml").read_text()) as api:

            def scrapes() -> dict[str, float]:
                return {r["metric"]["instance"]: float(r["value"][1]) for r in api.query("count_over_time(up[1m])")}

            # every target twice, so that rate() over a few seconds has something to work with
            wait_until(scrapes, 30, "two scrapes of each of the 3 targets", interval=0.25,
                       accept=lambda counts: len(counts) == 3 and min(counts.values()) >= 2)
            yield api
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
