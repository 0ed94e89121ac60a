"""One deployment per key space, as real processes: a ``bin/run-server --publish`` with other symbols on the same
Redis keys refuses to start (exit 2, one line), and the deployment it found counts it; with its own
``--relay-prefix`` it runs beside the first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import redis

from orderbook.relay.keys import Keys
from orderbook.relay.redis_url import redacted
from orderbook.simulator.process import SimulatorProcess
from tests.metrics_scrape import scrape
from tests.support.redis_server import RedisServer
from tests.support.service import ServerProcess
from tests.support.waiting import wait_until

START = 30.0
"""Seconds for a book node to start and lead: generous, on a shared 2-core machine."""


def leading(node: ServerProcess) -> bool:
    assert node.proc.poll() is None, f"{node.log_path.name} exited:\n{node.log()[-3000:]}"
    return scrape(node.metrics_port)("orderbook_relay_leader") == 1


def test_a_second_deployment_refuses_to_join_the_keys_of_the_first_and_runs_beside_it_with_its_own(
        tmp_path: Path, simulator_factory: Callable[..., SimulatorProcess], redis_server: RedisServer,
        redis_client: redis.Redis) -> None:
    simulator = simulator_factory("--symbol", "ETHBTC,BTCUSDT")
    started: list[ServerProcess] = []

    def node(name: str, *extra: str) -> ServerProcess:
        started.append(ServerProcess(simulator.urls, tmp_path / f"{name}.log", "--publish", redis_server.url, *extra))
        return started[-1]

    try:
        first = node("first", "--symbol", "ETHBTC,BTCUSDT")
        wait_until(lambda: leading(first), START, "the first deployment to lead")
        wait_until(lambda: redis_client.exists(Keys().catalog), START, "its catalogue stored")

        second = node("second", "--symbol", "BTCUSDT")
        assert second.proc.wait(START) == 2
        errors = [line for line in second.log().splitlines() if "error" in line.lower()]
        assert len(errors) == 1, second.log()[-3000:]
        assert errors[0].startswith(f"run-server: error: --publish {redacted(redis_server.url)}, key prefix orderbook")
        assert "--symbol ETHBTC,BTCUSDT --depth 10" in errors[0] and "--symbol BTCUSDT --depth 10" in errors[0]
        wait_until(lambda: scrape(first.metrics_port)("orderbook_relay_rejected_total", reason="other_deployment") == 1,
                   10, "the first deployment to count the refused node")

        beside = node("beside", "--symbol", "BTCUSDT", "--relay-prefix", "second")
        wait_until(lambda: leading(beside), START, "the second deployment to lead on its own keys")
        assert leading(first)
        assert redis_client.get("second:leader") is not None and redis_client.get("orderbook:leader") is not None
        for process in (first, beside):
            assert "Traceback" not in process.log()
    finally:
        for process in started:
            process.terminate()
