"""The monitoring kit against the real thing: exchange simulator -> bin/run-server -> a real Prometheus.

Prometheus runs the kit's scrape config and alert rules, with three test-only changes: the target is the
service's port, scrape and evaluation run every second, and the exchange alerts hold for 2 s instead of 30 s
(and the out-of-step alert's catch-up window is a few seconds instead of a minute, for the same reason).

The service follows two symbols on both venues. Silencing Bitstamp (socket open, nothing sent) makes the service
drop and retry the connection every --silence-timeout: the connection flaps, but its books never get back in step,
so the out-of-step alert fires for Bitstamp alone, once for each symbol. Stopping the simulator then leaves both
exchanges disconnected, and the disconnect alert fires for both, once each.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prom_tools import MONITORING, PrometheusApi, prometheus_server, promtool, scrape_config

from orderbook.simulator.process import SimulatorProcess
from tests.support.service import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

EXCHANGES = {"binance", "bitstamp"}
SYMBOLS = ("ETHBTC", "BTCUSDT")
BOOKS = {(exchange, symbol) for exchange in EXCHANGES for symbol in SYMBOLS}
HOLD = "for: 30s"
SHORT_HOLD = "for: 2s"
CATCH_UP = "min_over_time(orderbook_exchange_in_step[1m])"
SHORT_CATCH_UP = "min_over_time(orderbook_exchange_in_step[3s])"
"""The books coming into step at start-up would hold the out-of-step alert back for a minute."""
SILENCE_TIMEOUT = "2"
RELAY_GROUP = "  - name: orderbook-relay\n"


def short_hold_rules() -> str:
    """alerts.yml with the exchange alerts' holds shortened (the relay's group, after them, is left as it is)."""
    text = (MONITORING / "alerts.yml").read_text()
    service, relay = text.split(RELAY_GROUP)
    assert service.count(HOLD) == 2, "expected the disconnected and out-of-step alerts to hold for 30 s"
    assert service.count(CATCH_UP) == 1, "expected the out-of-step alert's catch-up window of a minute"
    return service.replace(HOLD, SHORT_HOLD).replace(CATCH_UP, SHORT_CATCH_UP) + RELAY_GROUP + relay


@pytest.fixture
def simulator(starts_processes: None) -> Iterator[SimulatorProcess]:
    with SimulatorProcess("--symbol", ",".join(SYMBOLS)) as sim:
        yield sim


@pytest.fixture
def service(simulator: SimulatorProcess, tmp_path: Path) -> Iterator[ServerProcess]:
    """bin/run-server against the simulator, on ports of its choosing (read back from its ready file)."""
    server = ServerProcess(simulator.urls, tmp_path / "run-server.log", "--silence-timeout", SILENCE_TIMEOUT,
                           "--symbol", ",".join(SYMBOLS))
    try:
        yield server
    finally:
        server.terminate()


@pytest.fixture
def service_log(service: ServerProcess) -> Path:
    return service.log_path


@pytest.fixture
def metrics_port(service: ServerProcess) -> int:
    return service.metrics_port  # once it listens


@pytest.fixture
def prometheus(prometheus_bin: str, metrics_port: int, tmp_path: Path) -> Iterator[PrometheusApi]:
    """Started as soon as the service listens (its port is known from then on): its first scrape waits for target
    discovery (about 5 s), which overlaps the service's connecting to the exchanges."""
    with prometheus_server(
        prometheus_bin, tmp_path / "prometheus", scrape_config("1s", [metrics_port]), short_hold_rules()
    ) as api:
        yield api


def values(api: PrometheusApi, expr: str, label: str = "exchange") -> dict[str, float]:
    return {result["metric"].get(label, ""): float(result["value"][1]) for result in api.query(expr)}


def book_values(api: PrometheusApi, expr: str) -> dict[tuple[str, str], float]:
    return {(r["metric"]["exchange"], r["metric"]["symbol"]): float(r["value"][1]) for r in api.query(expr)}


def firing(api: PrometheusApi, alert: str) -> set[str]:
    return {
        a["labels"].get("exchange", "")
        for a in api.alerts()
        if a["labels"]["alertname"] == alert and a["state"] == "firing"
    }


def firing_books(api: PrometheusApi, alert: str) -> list[tuple[str, str]]:
    """(exchange, symbol) of each firing instance of ``alert``, in order, repeats kept."""
    return sorted(
        (a["labels"].get("exchange", ""), a["labels"].get("symbol", ""))
        for a in api.alerts()
        if a["labels"]["alertname"] == alert and a["state"] == "firing"
    )


def firing_count(api: PrometheusApi, alert: str) -> int:
    return sum(1 for a in api.alerts() if a["labels"]["alertname"] == alert and a["state"] == "firing")


def alerts_for(api: PrometheusApi, exchange: str) -> list[dict[str, Any]]:
    return [a for a in api.alerts() if a["labels"].get("exchange") == exchange]


def wait_in_step(prometheus: PrometheusApi, context: str) -> None:
    wait_until(
        lambda: values(prometheus, "orderbook_exchange_connected >= 1").keys() == EXCHANGES
        and book_values(prometheus, "orderbook_exchange_in_step == 1").keys() == BOOKS,
        15, f"both exchanges connected and every book in step {context}", interval=0.25,
    )


def test_prometheus_scrapes_the_service_and_fires_the_exchange_alerts(
    prometheus: PrometheusApi, simulator: SimulatorProcess, service_log: Path, metrics_port: int, promtool_bin: str
) -> None:
    context = f"(service log: {service_log})"

    def target_up() -> bool:
        targets = prometheus.targets()
        return [(t["scrapeUrl"], t["health"]) for t in targets] == [(f"http://127.0.0.1:{metrics_port}/metrics", "up")]

    wait_until(target_up, 20, f"the service's target to be up {context}", interval=0.25)
    wait_in_step(prometheus, context)

    assert all(v > 0 for v in values(prometheus, "orderbook_frames_received_total").values())
    assert len(prometheus.query("orderbook_book_levels > 0")) == 2 * len(BOOKS)  # both sides of every book
    assert book_values(prometheus, "orderbook_exchange_lists_symbol") == dict.fromkeys(BOOKS, 1.0)
    assert all(age < 5 for age in values(prometheus, "orderbook_last_frame_age_seconds").values())
    best_bid = values(prometheus, "orderbook_best_bid", "symbol")
    best_ask = values(prometheus, "orderbook_best_ask", "symbol")
    assert best_bid.keys() == best_ask.keys() == set(SYMBOLS)
    spread = values(prometheus, "orderbook_spread", "symbol")
    for symbol in SYMBOLS:
        assert best_bid[symbol] > 0 and best_ask[symbol] > 0  # not ordered: the simulated venues cross now and then
        assert spread[symbol] == pytest.approx(best_ask[symbol] - best_bid[symbol])
    # No stream has been open: a symbol nothing reads is held back, merged only when a reader comes.
    assert values(prometheus, "orderbook_summaries_published_total")[""] == 0
    assert values(prometheus, "orderbook_grpc_open_streams")[""] == 0
    assert set(values(prometheus, "orderbook_snapshot_fetch_duration_seconds_count")) == EXCHANGES
    assert not [a for a in prometheus.alerts() if a["state"] == "firing"]

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        live_scrape = response.read().decode()
    check = promtool(promtool_bin, "check", "metrics", stdin=live_scrape)
    assert (check.returncode, check.stdout, check.stderr) == (0, "", ""), "promtool check metrics on a live scrape"

    simulator.control.silence("bitstamp")
    bitstamp_books = sorted(("bitstamp", symbol) for symbol in SYMBOLS)
    wait_until(
        lambda: firing_books(prometheus, "OrderbookExchangeOutOfStep") == bitstamp_books,
        20, f"OrderbookExchangeOutOfStep firing for each of bitstamp's books {context}", interval=0.25,
    )
    assert values(prometheus, 'orderbook_book_rebuilds_total{reason="silence"}').keys() == {"bitstamp"}
    assert alerts_for(prometheus, "binance") == []

    simulator.stop()
    wait_until(
        lambda: firing(prometheus, "OrderbookExchangeDisconnected") == EXCHANGES,
        20, f"OrderbookExchangeDisconnected firing for both exchanges {context}", interval=0.25,
    )
    assert firing_count(prometheus, "OrderbookExchangeDisconnected") == len(EXCHANGES)  # once a venue, not a symbol


def test_a_book_stuck_after_a_gap_fires_out_of_step_for_its_symbol_alone(
    prometheus: PrometheusApi, simulator: SimulatorProcess, service_log: Path, metrics_port: int
) -> None:
    """Binance's BTCUSDT book gets a gap, and then only snapshots older than its stream: it never gets back in
    step, while ETHBTC on the same connection, and both Bitstamp books, stream on."""
    context = f"(service log: {service_log})"
    wait_in_step(prometheus, context)
    simulator.control.stale_snapshot(count=1000, symbol="BTCUSDT")
    simulator.control.gap(symbol="BTCUSDT")
    wait_until(
        lambda: firing_books(prometheus, "OrderbookExchangeOutOfStep") == [("binance", "BTCUSDT")],
        20, f"OrderbookExchangeOutOfStep firing for binance BTCUSDT alone {context}", interval=0.25,
    )
    assert book_values(prometheus, "orderbook_exchange_in_step == 1").keys() == BOOKS - {("binance", "BTCUSDT")}
    assert book_values(prometheus, 'orderbook_book_rebuilds_total{reason="gap"}').keys() == {("binance", "BTCUSDT")}
    assert firing(prometheus, "OrderbookExchangeDisconnected") == set()
