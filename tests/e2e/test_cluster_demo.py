"""``make cluster-demo`` (bin/cluster-demo) as a user runs it: the whole deployment up, clients served through the
edges, and everything gone after Ctrl-C/SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess

import pytest

from tests.support.debian import find_or_install
from tests.support.processes import stop_process
from tests.support.service import REPO_ROOT

pytestmark = pytest.mark.usefixtures("starts_processes")  # bin/cluster-demo and bin/client


@pytest.fixture(autouse=True)
def _redis_server_installed() -> None:
    """As ``make cluster-demo`` does before it runs bin/cluster-demo, which only looks for it."""
    find_or_install("redis-server", "redis-server")


def _client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO_ROOT / "bin" / "client"), *args], capture_output=True, text=True, timeout=30)


def _refuses(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


def test_the_cluster_demo_serves_through_its_edges_and_stops_everything() -> None:
    demo = subprocess.Popen([str(REPO_ROOT / "bin" / "cluster-demo"), "--any-ports"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert demo.stdout is not None
        started = json.loads(demo.stdout.readline())
        edges = ",".join(started["edges"])
        listed = _client("--addr", edges, "--list", "--json", "--timeout", "20")
        assert listed.returncode == 0, listed.stderr
        assert [json.loads(line)["symbol"] for line in listed.stdout.splitlines()] == ["ETHBTC", "BTCUSDT"]
        streamed = _client("--addr", edges, "--symbol", "BTCUSDT", "--json", "--count", "2", "--timeout", "20")
        assert streamed.returncode == 0, streamed.stderr
        assert all(json.loads(line)["bids"] for line in streamed.stdout.splitlines())
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(30) == 0
        assert all(_refuses(address) for address in (*started["edges"], *started["nodes"]))
    finally:
        stop_process(demo)
