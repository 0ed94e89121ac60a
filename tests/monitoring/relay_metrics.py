"""What the relay exports: real scrapes of a book node publishing through a real Redis, and of an edge following it.

The relay's series exist only in processes started for it: a book node's ``orderbook_relay_*`` with ``--publish``,
an edge's from ``bin/run-edge``. So :class:`RelayDeployment` runs the real thing on loopback: a private
``redis-server`` (:mod:`tests.support.redis_server`), ``bin/run-server --demo --publish URL`` (its own exchange
simulator) and ``bin/run-edge --source URL``, each on ports of its choosing read back from its ready file. It is
settled once the node leads with every book in step and the edge serves what it receives (so every family, the
hop histogram and the last message's age included, has its samples).
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import EdgeProcess
from tests.support.redis_server import RedisServer
from tests.support.service import ServerProcess
from tests.support.waiting import wait_until

SETTLE_TIMEOUT = 90.0
"""Generous: the node's simulator, its books' first snapshots and the edge all start on a shared 2-core machine."""


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


SHARD = ("shard", "main")
"""The label of every relay series of a deployment of one shard."""


def node_settled(text: str) -> bool:
    """The node leads, Redis answers it, it has published, and every book it follows is in step."""
    values = samples(text)
    in_step = [value for (name, _), value in values.items() if name == "orderbook_exchange_in_step"]
    return (bool(in_step) and all(in_step)
            and values.get(("orderbook_relay_leader", (SHARD,))) == 1
            and values.get(("orderbook_relay_redis_connected", (SHARD,))) == 1
            and values.get(("orderbook_relay_published_total", (("kind", "update"), SHARD)), 0) > 0)


def edge_settled(text: str) -> bool:
    """The edge serves: Redis answers, the leader was heard, and it has received (and timed) updates and
    heartbeats."""
    values = samples(text)
    return (values.get(("orderbook_relay_source_up", (SHARD,))) == 1
            and values.get(("orderbook_relay_redis_connected", (SHARD,))) == 1
            and ("orderbook_relay_last_message_age_seconds", (SHARD,)) in values
            and values.get(("orderbook_relay_received_total", (("kind", "update"), SHARD)), 0) > 0
            and values.get(("orderbook_relay_received_total", (("kind", "heartbeat"), SHARD)), 0) > 0
            and values.get(("orderbook_relay_hop_seconds_count", (SHARD,)), 0) > 0)


class RelayDeployment:
    """Redis, a book node publishing through it (the leader; :meth:`add_node` starts standbys) and an edge
    following it, their files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(directory / "redis")
        self.nodes: list[ServerProcess] = []
        self.edge: EdgeProcess | None = None
        self.killed: list[ServerProcess | EdgeProcess] = []

    def start(self) -> RelayDeployment:
        self.redis.start()
        self.add_node()
        self.edge = EdgeProcess(self.redis.url, self.directory / "run-edge.log")
        return self

    def add_node(self) -> ServerProcess:
        """Another ``bin/run-server --demo --publish`` (each with its own simulator)."""
        node = ServerProcess(None, self.directory / f"run-server-{len(self.nodes) + 1}.log", "--demo", "--publish",
                             self.redis.url)
        self.nodes.append(node)
        return node

    def __enter__(self) -> RelayDeployment:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def node_port(self) -> int:
        """The first book node's /metrics port."""
        return self.nodes[0].metrics_port

    @property
    def edge_port(self) -> int:
        assert self.edge is not None
        return self.edge.metrics_port

    def wait_settled(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Until the first book node leads with every book in step, and the edge serves what it publishes."""
        context = f"(logs in {self.directory})"
        for what, port, settled in (("the book node to lead with every book in step", self.node_port, node_settled),
                                    ("the edge to serve the leader's updates", self.edge_port, edge_settled)):
            wait_until(lambda settled=settled, port=port: settled(self.scrape(port)), timeout, f"{what} {context}",
                       interval=0.25)

    def scrape(self, port: int) -> str:
        """``port``'s /metrics; fails with the log of any of the processes that exited unasked."""
        for process in (*self.nodes, self.edge):
            if process is not None and process not in self.killed and process.proc.poll() is not None:
                raise AssertionError(f"{process.log_path.name}: exited with {process.proc.returncode}:\n"
                                     f"{process.log()[-3000:]}")
        return scrape(port)

    def kill(self, process: ServerProcess | EdgeProcess) -> None:
        """SIGKILL: gone at once, as a crash or a lost host (a book node's simulator exits with it)."""
        self.killed.append(process)
        process.proc.kill()
        process.proc.wait()

    def expositions(self) -> dict[str, str]:
        """The first book node's and the edge's /metrics, now."""
        return {"book node": self.scrape(self.node_port), "edge": self.scrape(self.edge_port)}

    def stop(self) -> None:
        for process in (self.edge, *self.nodes):
            if process is not None:
                process.terminate()
        self.redis.stop()
