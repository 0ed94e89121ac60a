"""A whole deployment on loopback, as real processes: the simulator, Redis, book nodes publishing through it
(``bin/run-server --publish``) and edges serving from it (``bin/run-edge``)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderbook.simulator.process import SimulatorProcess
from tests.metrics_scrape import Samples, scrape
from tests.support.ports import ReadyFilePorts, server_port_args
from tests.support.processes import stop_process, with_default_signals
from tests.support.redis_server import RedisServer
from tests.support.service import REPO_ROOT, Book, ServerProcess

RUN_EDGE = REPO_ROOT / "bin" / "run-edge"


class EdgeProcess(ReadyFilePorts):
    """``bin/run-edge --source URL`` on ports it picks itself (its ready file), its log in a file."""

    def __init__(self, source: str, log_path: Path, *extra: str) -> None:
        self.log_path = log_path
        self.ready_file = log_path.with_name(log_path.name + ".ports.json")
        self.ready_file.unlink(missing_ok=True)
        args = [str(RUN_EDGE), "--source", source, *server_port_args(self.ready_file), *extra]
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(with_default_signals(args), stdout=log, stderr=subprocess.STDOUT,
                                         env=os.environ.copy())

    def ready_log(self) -> str:
        return self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 10.0) -> int:
        return stop_process(self.proc, timeout)


def health(target: str) -> str:
    """grpc.health.v1's answer for the whole server: SERVING, NOT_SERVING, or the error's code name."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        except grpc.RpcError as error:
            return error.code().name  # type: ignore[attr-defined]
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


class Cluster:
    """Started piece by piece by the test; :meth:`stop` ends everything, whatever the outcome."""

    def __init__(self, directory: Path, simulator: SimulatorProcess) -> None:
        self.directory = directory
        self.simulator = simulator
        self.redis = RedisServer(directory / "redis").start()
        self.nodes: list[ServerProcess] = []
        self.edges: list[EdgeProcess] = []

    def start_node(self, *extra: str) -> ServerProcess:
        node = ServerProcess(self.simulator.urls, self.directory / f"node-{len(self.nodes)}.log",
                             "--publish", self.redis.url, *extra)
        self.nodes.append(node)
        return node

    def start_edge(self, *extra: str) -> EdgeProcess:
        edge = EdgeProcess(self.redis.url, self.directory / f"edge-{len(self.edges)}.log", *extra)
        self.edges.append(edge)
        return edge

    def truth(self) -> Book:
        return Book.from_truth(self.simulator.control.truth(10)["merged"])

    def leader(self) -> ServerProcess | None:
        """The book node whose /metrics says it leads (None if none does); dead nodes are skipped."""
        leading = [node for node in self.nodes
                   if node.proc.poll() is None and scrape(node.metrics_port)("orderbook_relay_leader") == 1]
        assert len(leading) <= 1, "two book nodes lead at once"
        return leading[0] if leading else None

    @staticmethod
    def metrics(process: ReadyFilePorts) -> Samples:
        return scrape(process.metrics_port)

    @staticmethod
    def kill(process: ServerProcess | EdgeProcess) -> float:
        """``kill -9``; returns the time.monotonic() it was sent."""
        sent = time.monotonic()
        process.proc.send_signal(signal.SIGKILL)
        process.proc.wait()
        return sent

    def logs(self) -> str:
        parts = [f"--- {process.log_path.name}\n{process.log()[-2500:]}" for process in (*self.nodes, *self.edges)]
        return "\n".join(parts) + f"\n--- redis\n{self.redis.log()[-1000:]}"

    def stop(self) -> None:
        for process in (*self.edges, *self.nodes):
            process.terminate()
        self.redis.stop()
