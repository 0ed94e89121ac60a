"""Prometheus's own tools for the monitoring tests: find or install them, run promtool, run a private server.

The binaries come from Debian's ``prometheus`` package, installed on first use (:mod:`tests.support.debian`).
Each test runs its own server with its own storage directory, on a loopback port it picks itself (port 0) and
logs (:func:`start_prometheus`).
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.support.debian import ToolMissing, find_or_install  # noqa: F401 - conftest imports ToolMissing from here
from tests.support.ports import logged_port
from tests.support.processes import stop_process, with_default_signals
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
PACKAGE = "prometheus"
LISTENING = r'msg="Listening on" address=127\.0\.0\.1:(\d+)'
"""The line Prometheus logs (at info level) with the address it actually bound."""


def find_tool(name: str) -> str:
    """Absolute path of ``promtool`` or ``prometheus``, installing the Debian package when missing (as root)."""
    return find_or_install(name, PACKAGE)


def promtool(tool: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)


class PrometheusApi:
    """The few HTTP API calls the tests make, answering the ``data`` member of a successful reply."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base_url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise AssertionError(f"{url}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant vector result of ``expr`` (a list of {"metric": {...}, "value": [t, "v"]})."""
        data = self.get("/api/v1/query", query=expr)
        return data["result"]

    def targets(self) -> list[dict[str, Any]]:
        return self.get("/api/v1/targets")["activeTargets"]

    def alerts(self) -> list[dict[str, Any]]:
        return self.get("/api/v1/alerts")["alerts"]

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.get("/api/v1/rules")["groups"] for rule in group["rules"]]


JOBS = {"orderbook": "127.0.0.1:9102", "orderbook-edge": "127.0.0.1:9103"}
"""The kit's scrape jobs and their one target each: a book node's and an edge's default --metrics-addr."""


def scrape_config(interval: str, nodes: Sequence[int], edges: Sequence[int] = ()) -> str:
    """monitoring/prometheus.yml with both intervals set to ``interval`` and its targets moved to loopback ports:
    ``nodes`` for the book nodes' job, ``edges`` for the edges' (a job with no port is left out, as a deployment
    without edges would)."""
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    for key in ("scrape_interval", "evaluation_interval"):
        if config["global"].get(key) != "5s":
            raise AssertionError(f"monitoring/prometheus.yml: global {key} is no longer 5s; update the test's rewrite")
        config["global"][key] = interval
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    found = {name: [target for static in job["static_configs"] for target in static["targets"]]
             for name, job in jobs.items()}
    if found != {name: [target] for name, target in JOBS.items()}:
        raise AssertionError(f"monitoring/prometheus.yml scrapes {found}, not {JOBS}; update the test's rewrite")
    config["scrape_configs"] = [
        {**jobs[name], "static_configs": [{"targets": [f"127.0.0.1:{port}" for port in ports]}]}
        for name, ports in (("orderbook", nodes), ("orderbook-edge", edges)) if ports
    ]
    return yaml.safe_dump(config, sort_keys=False)


def start_prometheus(binary: str, args: Sequence[str], log_path: Path,
                     cwd: Path | None = None) -> tuple[subprocess.Popen[bytes], PrometheusApi]:
    """Start ``prometheus`` with ``args`` on a loopback port of its choosing; return it and its API once it has
    logged the port it bound (not yet ready: see :func:`wait_ready`). Its log goes to ``log_path``.

    Port 0, read back from its log, rather than a port picked here: nothing can take the port in between.
    """
    with log_path.open("w") as log:
        process = subprocess.Popen(
            with_default_signals([binary, *args, "--web.listen-address=127.0.0.1:0", "--log.level=info"]),
            cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        port = logged_port(log_path, LISTENING, process)
    except BaseException:
        stop_process(process)
        raise
    return process, PrometheusApi(f"http://127.0.0.1:{port}")


def exited(process: subprocess.Popen[bytes], log_path: Path) -> AssertionError:
    return AssertionError(f"prometheus exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")


@contextmanager
def prometheus_server(binary: str, workdir: Path, config: str, rules: str) -> Iterator[PrometheusApi]:
    """Run ``prometheus`` with ``config`` (which names ``alerts.yml``) and ``rules`` as that file, until ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(config)
    (workdir / "alerts.yml").write_text(rules)
    log_path = workdir / "prometheus.log"
    process, api = start_prometheus(
        binary, [f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}"], log_path
    )
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise exited(process, log_path)
            try:
                with urllib.request.urlopen(f"{api.base_url}/-/ready", timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(ready, 20, "prometheus to be ready", interval=0.25)
        yield api
    finally:
        stop_process(process)
