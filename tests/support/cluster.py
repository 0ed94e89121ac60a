"""A whole deployment on loopback, as real processes: the simulator, Redis, book nodes publishing through it
(``bin/run-server --publish``) and edges serving from it (``bin/run-edge``)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderbook.relay.timing import REDIS_RETRY_CAP, TICK
from orderbook.simulator.process import SimulatorProcess
from tests.metrics_scrape import Samples, scrape
from tests.support.ports import ReadyFilePorts
from tests.support.redis_server import RedisServer
from tests.support.service import REPO_ROOT, Book, LoggedServer, ServerProcess

RUN_EDGE = REPO_ROOT / "bin" / "run-edge"


class EdgeProcess(LoggedServer):
    """``bin/run-edge --source URL``, ``extra`` arguments last."""

    def __init__(self, source: str, log_path: Path, *extra: str) -> None:
        super().__init__(RUN_EDGE, ["--source", source, *extra], log_path)


def health(target: str) -> str:
    """grpc.health.v1's answer for the whole server: SERVING, NOT_SERVING, or the error's code name."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        except grpc.RpcError as error:
            return error.code().name
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
        leading = only_one_leading(self.nodes, "two book nodes lead at once")
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

    def running(self) -> AbstractContextManager[None]:
        return lifetime(self)


class Deployed(Protocol):
    """Book nodes and edges, behind a Redis of some kind: a :class:`Cluster`, or a test's own."""

    nodes: list[ServerProcess]
    edges: list[EdgeProcess]

    def logs(self) -> str: ...

    def stop(self) -> None: ...


@contextmanager
def lifetime(deployed: Deployed) -> Iterator[None]:
    """A deployment's life in a fixture: when it ends, no process of it logged a traceback; when it fails, every
    log is printed; it is stopped either way."""
    try:
        yield
        for process in (*deployed.nodes, *deployed.edges):
            assert "Traceback" not in process.log(), f"an unhandled exception in {process.log_path.name}"
    except BaseException:
        print(deployed.logs())
        raise
    finally:
        deployed.stop()


def only_one_leading(nodes: list[ServerProcess], what: str) -> list[ServerProcess]:
    """The live book nodes of ``nodes`` whose /metrics say they lead: at most one, or the assertion ``what``.

    Two may say so at once for a moment after Redis lost the lease (a restart, empty): a standby takes it at its
    next attempt, and the old leader learns it has lost it at its own, at most REDIS_RETRY_CAP + TICK later, its
    writes fenced meanwhile (README, Beyond one machine). Two found leading are asked again after that: both still
    leading is a split brain."""

    def leading() -> list[ServerProcess]:
        return [node for node in nodes
                if node.proc.poll() is None and scrape(node.metrics_port)("orderbook_relay_leader") == 1]

    found = leading()
    if len(found) > 1:
        time.sleep(REDIS_RETRY_CAP + 2 * TICK)
        found = leading()
    assert len(found) <= 1, what
    return found
