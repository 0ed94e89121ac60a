"""The relay's alerts against the real thing: Redis, two book nodes publishing through it, an edge, and a real
Prometheus running the kit's config and rules (scrape and evaluation every second).

The leader is killed: the standby takes over within the lease and a tick, the edge follows it, and nothing fires
(OrderbookRelayNoLeader holds for 15 s, as shipped: the seconds without a leader are well under it). Then the
standby, the last book node, is killed: no node reports orderbook_relay_leader any more, and yet
OrderbookRelayNoLeader fires, from the down targets of nodes that published; the edge, hearing no one, fires
OrderbookEdgeWithoutSource. Then Redis is killed and the edge fires OrderbookRelayRedisDown. Those two hold for
a few seconds here instead of 30 (their timing is promtool's to check, in test_alert_rules.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from prom_tools import MONITORING, PrometheusApi, prometheus_server, scrape_config
from relay_metrics import RelayDeployment, node_settled

from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(240)

SHORT_HOLDS = {"OrderbookEdgeWithoutSource": ("30s", "3s"), "OrderbookRelayRedisDown": ("30s", "3s")}
NO_LEADER_HOLD = ("OrderbookRelayNoLeader", "15s", 15.0)
RELAY_ALERTS = ("OrderbookRelayNoLeader", "OrderbookRelayTakeoverStorm", "OrderbookEdgeWithoutSource",
                "OrderbookRelayRedisDown", "OrderbookRelayHopLatencyHigh")


def short_hold_rules() -> str:
    """alerts.yml with the edge alerts' holds shortened; the no-leader alert's as shipped."""
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    holds = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            holds[rule["alert"]] = rule["for"]
            if rule["alert"] in SHORT_HOLDS:
                shipped, short = SHORT_HOLDS[rule["alert"]]
                assert rule["for"] == shipped, f"expected {rule['alert']} to hold {shipped}"
                rule["for"] = short
    alert, shipped, _ = NO_LEADER_HOLD
    assert holds[alert] == shipped, f"expected {alert} to hold {shipped}"
    return yaml.safe_dump(rules, sort_keys=False)


@pytest.fixture
def relay(starts_processes: None, tmp_path: Path) -> Iterator[RelayDeployment]:
    """The leader (the first node), a standby and an edge, settled."""
    with RelayDeployment(tmp_path / "relay") as deployment:
        deployment.wait_settled()
        standby = deployment.add_node()
        wait_until(lambda: 'orderbook_relay_leader{shard="main"} 0.0' in deployment.scrape(standby.metrics_port)
                   and 'orderbook_relay_redis_connected{shard="main"} 1.0' in deployment.scrape(standby.metrics_port),
                   60, f"the second book node to stand by (logs in {deployment.directory})", interval=0.25)
        yield deployment


@pytest.fixture
def prometheus(prometheus_bin: str, relay: RelayDeployment, tmp_path: Path) -> Iterator[PrometheusApi]:
    config = scrape_config("1s", [node.metrics_port for node in relay.nodes], [relay.edge_port])
    with prometheus_server(prometheus_bin, tmp_path / "prometheus", config, short_hold_rules()) as api:
        yield api


def value(api: PrometheusApi, expr: str) -> dict[str, float]:
    """Each series of ``expr`` by its instance (or "" for an aggregate)."""
    return {r["metric"].get("instance", ""): float(r["value"][1]) for r in api.query(expr)}


def alerts(api: PrometheusApi, state: str) -> set[tuple[str, str]]:
    """(alert, instance) of each relay alert in ``state`` (pending or firing)."""
    return {(a["labels"]["alertname"], a["labels"].get("instance", "")) for a in api.alerts()
            if a["state"] == state and a["labels"]["alertname"] in RELAY_ALERTS}


def test_a_takeover_fires_nothing_and_a_lost_relay_fires_its_alerts(
    relay: RelayDeployment, prometheus: PrometheusApi
) -> None:
    leader, standby = relay.nodes
    at = {"leader": f"127.0.0.1:{leader.metrics_port}", "standby": f"127.0.0.1:{standby.metrics_port}",
          "edge": f"127.0.0.1:{relay.edge_port}"}
    context = f"(logs in {relay.directory})"

    wait_until(lambda: value(prometheus, "orderbook_relay_leader") == {at["leader"]: 1, at["standby"]: 0}
               and value(prometheus, "orderbook_relay_source_up") == {at["edge"]: 1},
               30, f"Prometheus to see the leader, the standby and the edge serving {context}", interval=0.25)
    assert alerts(prometheus, "firing") == set()

    # The leader dies: the standby takes the lease once it lapses, and the edge follows the new epoch.
    relay.kill(leader)
    killed_at = time.monotonic()
    wait_until(lambda: node_settled(relay.scrape(standby.metrics_port)), 30,
               f"the standby to take over {context}", interval=0.25)
    wait_until(lambda: value(prometheus, "orderbook_relay_leader") == {at["standby"]: 1}
               and value(prometheus, 'orderbook_relay_epoch{job="orderbook-edge"}') == {at["edge"]: 2}
               and value(prometheus, "orderbook_relay_leader_changes_total") == {at["edge"]: 1},
               30, f"Prometheus to see the new leader, and the edge following it {context}", interval=0.25)
    # Past the no-leader hold since the leader died: nothing fired, the dead leader's down target included.
    while time.monotonic() < killed_at + NO_LEADER_HOLD[2] + 3:
        assert alerts(prometheus, "firing") == set(), context
        time.sleep(0.5)
    assert value(prometheus, "orderbook_relay_source_up") == {at["edge"]: 1}

    # The last book node dies: no node reports a leader, and none leads.
    relay.kill(standby)
    wait_until(lambda: alerts(prometheus, "firing") == {("OrderbookRelayNoLeader", ""),
                                                        ("OrderbookEdgeWithoutSource", at["edge"])},
               60, f"OrderbookRelayNoLeader and OrderbookEdgeWithoutSource to fire {context}", interval=0.25)
    assert value(prometheus, "orderbook_relay_leader") == {}

    # Redis dies: the edge cannot reach it.
    relay.redis.kill()
    wait_until(lambda: ("OrderbookRelayRedisDown", at["edge"]) in alerts(prometheus, "firing"),
               30, f"OrderbookRelayRedisDown to fire for the edge {context}", interval=0.25)
    assert alerts(prometheus, "firing") == {("OrderbookRelayNoLeader", ""), ("OrderbookEdgeWithoutSource", at["edge"]),
                                            ("OrderbookRelayRedisDown", at["edge"])}
