"""Supervision in a real process: a task that raises is logged with its traceback, counted and started again; one
that keeps raising ends the process with exit code 1 (tests/support/failing_server.py makes Binance's connection
raise)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.ports import server_port_args
from tests.support.processes import stop_process
from tests.support.service import REPO_ROOT, ServerProcess
from tests.support.waiting import wait_until


class FailingServer(ServerProcess):
    """``bin/run-server`` against the simulator, its Binance connection failing ``once`` or ``always``."""

    def __init__(self, mode: str, urls: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.ready_file = log_path.with_name(log_path.name + ".ports.json")
        venue_args = [arg for name in ("binance", "bitstamp") for arg in
                      (f"--{name}-ws-url", urls[f"{name}_ws"], f"--{name}-rest-url", urls[f"{name}_rest"])]
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.failing_server", mode, *server_port_args(self.ready_file),
                 *venue_args], cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})

    def metric(self, name: str, **labels: str) -> float:
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        for line in text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        return 0.0


def test_a_task_that_raises_is_counted_logged_and_started_again(simulator_factory, tmp_path):
    simulator = simulator_factory()
    server = FailingServer("once", simulator.urls, tmp_path / "server.log")
    try:
        wait_until(lambda: server.metric("orderbook_exchange_in_step", exchange="binance", symbol="ETHBTC") == 1,
                   30, "Binance in step on its restarted connection task")
        server.wait_serving()
        assert server.metric("orderbook_task_failures_total", task="binance connection") == 1
        assert server.metric("orderbook_task_up", task="binance connection") == 1
        log = server.log()
        assert log.count("task binance connection failed; starting it again") == 1
        assert "RuntimeError: made to fail by the test" in log, "the traceback is logged"
        assert server.proc.poll() is None
    finally:
        assert stop_process(server.proc) == 0


def test_a_task_that_keeps_raising_ends_the_process_with_exit_code_1(simulator_factory, tmp_path):
    simulator = simulator_factory()
    server = FailingServer("always", simulator.urls, tmp_path / "server.log")
    try:
        assert server.proc.wait(timeout=60) == 1
    finally:
        stop_process(server.proc)
    log = server.log()
    assert "giving up, the process exits for its supervisor to restart it" in log
    assert log.count("task binance connection failed; starting it again") == 6
