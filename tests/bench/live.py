"""Real processes on loopback for the end-to-end scenarios: simulator, server (optionally under pyinstrument),
client processes; and what is read from them: probe latencies, /metrics, the server's RSS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderbook.simulator.process import START_TIMEOUT, SimulatorProcess
from tests.bench.report import percentile
from tests.metrics_scrape import Samples, scrape
from tests.support.ports import ReadyFilePorts, server_port_args
from tests.support.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SERVICE_CHECKOUT = "BENCH_SERVICE_CHECKOUT"
"""Environment variable: the checkout whose ``bin/run-server`` and ``bin/run-edge`` the scenarios start (``bin/bench
--compare REV --service-only`` sets it to REV's); unset, this one. The harness and the simulator are always this
checkout's. Not ``ORDERBOOK_*``: the servers refuse settings they do not know, and they inherit it."""


def launcher(name: str) -> Path:
    """``bin/<name>`` of the checkout that serves (:data:`SERVICE_CHECKOUT`)."""
    root = os.environ.get(SERVICE_CHECKOUT)
    return (Path(root) if root else REPO_ROOT) / "bin" / name


def _env() -> dict[str, str]:
    """The processes' environment: this checkout on PYTHONPATH (a launcher puts its own first), and PYTHONSAFEPATH,
    so that no ``python -m`` puts the current directory (this checkout) ahead of a launcher's own: REV's launchers
    predate their ``-P``."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep + path if path else ''}", "PYTHONSAFEPATH": "1"}


class Server(ReadyFilePorts):
    """``bin/run-server`` against a simulator, or the same module under pyinstrument when ``profile`` is set."""

    ready_timeout = 60.0  # under the profiler it starts slowly

    def __init__(self, urls: dict[str, str], log_path: Path, *extra: str, profile: Path | None = None) -> None:
        self.profile = profile
        self.ready_file = log_path.with_name(log_path.name + ".ports.json")
        self.ready_file.unlink(missing_ok=True)
        args = [
            *server_port_args(self.ready_file),
            "--binance-ws-url", urls["binance_ws"], "--binance-rest-url", urls["binance_rest"],
            "--bitstamp-ws-url", urls["bitstamp_ws"], "--bitstamp-rest-url", urls["bitstamp_rest"],
            "--log-level", "warning", *extra,
        ]
        if profile is None:
            command = [str(launcher("run-server")), *args]
        else:
            command = [PYTHON, "-m", "pyinstrument", "--interval", "0.0005", "-r", "session", "-o", str(profile),
                       "-m", "orderbook.server", *args]
        self.log_path = log_path
        self.launched_at = time.monotonic()
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_env())

    def ready_log(self) -> str:
        return self.log_tail()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_serving(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited early:\n{self.log_tail()}")
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"server not SERVING within {timeout} s:\n{self.log_tail()}")

    def metrics(self) -> Samples:
        return scrape(self.metrics_port)

    def memory(self) -> dict[str, float]:
        """VmRSS and VmHWM of the server process, in MB."""
        found = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
        return found

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self.proc, timeout)


class ClientGroup:
    """Client processes (:mod:`tests.bench.probe_clients`), each with its streams on its own channel(s):
    ``streams_each`` BookSummary streams, and a Book stream of each of ``book_symbols`` at ``book_depth``."""

    def __init__(self, target: str, processes: int, streams_each: int, channels_each: int = 1,
                 start_timeout: float = 30.0, book_symbols: Sequence[str] = (), book_depth: int = 0) -> None:
        self.launched_at = time.monotonic()
        books = ["--book-symbols", ",".join(book_symbols), "--book-depth", str(book_depth)] if book_symbols else []
        self.procs = [
            subprocess.Popen(
                [PYTHON, "-m", "tests.bench.probe_clients", target, "--streams", str(streams_each),
                 "--channels", str(channels_each), "--start-timeout", str(start_timeout), *books],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_env(), cwd=REPO_ROOT, text=True,
            )
            for _ in range(processes)
        ]
        self.streams = processes * streams_each

    def wait_ready(self) -> int:
        """Blocks until every process printed ``ready``; returns how many streams had a summary by then."""
        started = 0
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("ready"):
                raise RuntimeError(f"client process said {line!r} instead of ready")
            started += int(line.split()[1])
        self.ready_at = time.monotonic()
        return started

    def finish(self) -> list[dict[str, Any]]:
        """Tell every process to stop and collect what each received."""
        results = []
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in self.procs:
            assert proc.stdout is not None
            out = proc.stdout.read()
            proc.wait(30)
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@dataclass
class ProbeStats:
    latencies_ms: list[float]
    probes: int
    expected: int
    lost: int

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_ms
        return {
            "probes": self.probes, "samples": len(lat), "lost": self.lost,
            "lost_fraction": self.lost / self.expected if self.expected else None,
            "p50_ms": percentile(lat, 0.50), "p90_ms": percentile(lat, 0.90), "p99_ms": percentile(lat, 0.99),
            "max_ms": max(lat) if lat else None,
        }


def probe_stats(sent: list[tuple[int, str, float]], results: list[dict[str, Any]], streams: int,
                start: float, end: float) -> ProbeStats:
    """Latency of every (probe, stream) pair for probes sent in [start, end): receipt minus send, in ms."""
    window = {key: at for key, _, at in sent if start <= at < end}
    latencies: list[float] = []
    for result in results:
        for key, times in result["markers"].items():
            sent_at = window.get(int(key))
            if sent_at is not None:
                latencies.extend((t - sent_at) * 1000 for t in times)
    expected = len(window) * streams
    return ProbeStats(latencies, len(window), expected, expected - len(latencies))


class Stack:
    """Simulator + server, started together and stopped together (``with Stack(...) as stack``).

    ``sim_start_timeout``: how long the simulator may take to print its URLs (hundreds of 1,000-level markets take
    it seconds to build)."""

    def __init__(self, workdir: Path, sim_args: list[str], server_args: list[str], profile: Path | None = None,
                 name: str = "server", sim_start_timeout: float = START_TIMEOUT) -> None:
        self.sim = SimulatorProcess(*sim_args, "--log-level", "WARNING", start_timeout=sim_start_timeout).start()
        try:
            self.server = Server(self.sim.urls, workdir / f"{name}.log", *server_args, profile=profile)
        except BaseException:
            self.sim.stop()
            raise

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.sim.stop()
