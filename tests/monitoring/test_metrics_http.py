"""The /metrics server against careless and hostile clients: idle and trickling connections, scrape storms,
oversized or malformed requests. It runs alone in a gevent process (``metrics_http_helper.py``), as in the service.

Time bounds here are loose (a shared 2-core machine): they tell "answered at once" from "waited for a timeout".
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from metrics_http_support import fixed_registry
from prometheus_client import generate_latest, make_wsgi_app

from orderbook.metrics_http import HttpLimits, MetricsHttpServer, _Request

from tests.support.processes import stop_process
from tests.support.service import RUN_SERVER

HELPER = Path(__file__).with_name("metrics_http_helper.py")
PROMPT = 0.5
"""A scrape answered within this is prompt; the head timeout in these tests is at least twice that."""

pytestmark = pytest.mark.timeout(30)


class Helper:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HELPER), *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    def finish(self, timeout: float = 10.0) -> dict[str, int]:
        """Stop the server (end of stdin); its outcome counts."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        assert self.proc.wait(timeout) == 0
        (line,) = [line for line in out.splitlines() if line.startswith("OUTCOMES ")]
        return json.loads(line.removeprefix("OUTCOMES "))

    def close(self) -> None:
        stop_process(self.proc, 5)


@pytest.fixture
def start_helper(starts_processes: None) -> Iterator:
    helpers: list[Helper] = []

    def start(*args: str) -> Helper:
        helpers.append(Helper(*args))
        return helpers[-1]

    yield start
    for helper in helpers:
        helper.close()


def request(port: int, method: str = "GET", path: str = "/metrics", headers: dict[str, str] | None = None,
            timeout: float = 5.0) -> tuple[int, dict[str, str], bytes, float]:
    """(status, headers, raw body, seconds) of one request on its own connection."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return response.status, dict(response.getheaders()), body, time.monotonic() - started
    finally:
        connection.close()


def prometheus_client_response(accept: str | None, query: str = "") -> tuple[str, bytes]:
    """What prometheus-client's own handler answers for the same registry: (Content-Type, body)."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": query}
    if accept is not None:
        environ["HTTP_ACCEPT"] = accept
    seen: dict[str, str] = {}
    body = b"".join(make_wsgi_app(fixed_registry(), disable_compression=True)(
        environ, lambda status, headers: seen.update(headers)))
    return seen["Content-Type"], body


def open_idle(port: int, count: int, partial: bytes = b"") -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if partial:
            sock.sendall(partial)
        sockets.append(sock)
    return sockets


def seconds_until_closed(sock: socket.socket, trickle: bytes = b"", every: float = 0.2, limit: float = 10.0) -> \
        tuple[float, bytes]:
    """Send ``trickle`` every ``every`` s (nothing if empty) until the server closes; (seconds, what it sent)."""
    started = time.monotonic()
    received = b""
    sock.settimeout(every)
    while time.monotonic() - started < limit:
        try:
            if trickle:
                sock.sendall(trickle)
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        received += chunk
    return time.monotonic() - started, received


@pytest.mark.parametrize("accept", [
    None,
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;q=0.5",
    "application/openmetrics-text; version=0.0.1",
])
def test_the_exposition_is_prometheus_clients_byte_for_byte(start_helper, accept):
    helper = start_helper()
    content_type, expected = prometheus_client_response(accept)
    status, headers, body, _ = request(helper.port, headers={"Accept": accept} if accept else {})
    assert status == 200
    assert headers["Content-Type"] == content_type
    assert body == expected and len(body) > 10_000


def test_gzip_when_accepted_and_name_filters_as_prometheus_client(start_helper):
    helper = start_helper()
    status, headers, body, _ = request(helper.port, headers={"Accept-Encoding": "gzip"})
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    assert gzip.decompress(body) == prometheus_client_response(None)[1]
    query = "name[]=demo_spread&name[]=demo_frames_received_total"
    _, _, body, _ = request(helper.port, path=f"/metrics?{query}")
    assert body == prometheus_client_response(None, query)[1]
    assert b"demo_spread 1e-05" in body and b"demo_level_amount" not in body


def test_a_build_lets_other_greenlets_run_between_metric_families_and_is_the_same_bytes():
    """In process: with a turn of 0 the build passes the hub after every family (at 500 symbols a build held it
    50-80 ms), and what it builds is prometheus-client's exposition all the same."""
    registry = fixed_registry()
    seen: list[str] = []
    built = registry.collect

    def collect():
        for family in built():
            seen.append(family.name)
            yield family

    def other_greenlet():
        while True:
            seen.append("other")
            gevent.sleep(0)

    registry.collect = collect  # type: ignore[method-assign]
    server = MetricsHttpServer(registry, "127.0.0.1", 0, HttpLimits(build_turn=0))
    other = gevent.spawn(other_greenlet)
    try:
        body, _ = server._exposition(_Request("GET", "/metrics", "", {}))
    finally:
        other.kill()
    families = [name for name in seen if name != "other"]
    assert len(families) == 4
    for first, then in zip(families, families[1:]):
        assert "other" in seen[seen.index(first):seen.index(then)]
    registry.collect = built  # type: ignore[method-assign]
    assert body == generate_latest(registry)


def test_head_index_unknown_paths_and_methods(start_helper):
    helper = start_helper()
    status, headers, body, _ = request(helper.port, "HEAD")
    assert (status, body) == (200, b"") and int(headers["Content-Length"]) > 10_000
    assert headers["Connection"] == "close"
    assert request(helper.port, path="/")[0] == 200
    assert request(helper.port, path="/favicon.ico")[0] == 404
    status, headers, _, _ = request(helper.port, "POST")
    assert (status, headers["Allow"]) == (405, "GET, HEAD")
    assert helper.finish() == {"served": 1, "index": 1, "not_found": 1, "method": 1}


def test_a_scrape_is_prompt_while_200_idle_and_trickling_connections_are_open(start_helper):
    helper = start_helper("--head-timeout", "10")
    idle = open_idle(helper.port, 100)
    half_sent = open_idle(helper.port, 100, partial=b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    try:
        durations = []
        for _ in range(5):
            status, _, _, seconds = request(helper.port)
            assert status == 200
            durations.append(seconds)
        assert max(durations) < PROMPT, durations
    finally:
        for sock in idle + half_sent:
            sock.close()


def test_a_silent_or_trickling_connection_is_closed_at_the_head_timeout(start_helper):
    helper = start_helper("--head-timeout", "1")
    silent, trickling = open_idle(helper.port, 2)
    results: dict[str, tuple[float, bytes]] = {}
    reader = threading.Thread(target=lambda: results.setdefault("silent", seconds_until_closed(silent)))
    reader.start()
    trickling.sendall(b"GET /metrics HTTP/1.1\r\n")
    results["trickling"] = seconds_until_closed(trickling, trickle=b"X-Slow: 1\r\n")  # well within 8 KiB
    reader.join(10)
    for name, (seconds, received) in results.items():
        assert 0.8 <= seconds <= 3.0, (name, seconds)
        assert received.startswith(b"HTTP/1.1 408 "), (name, received)
    silent.close()
    trickling.close()
    assert request(helper.port)[0] == 200
    assert helper.finish()["timeout"] == 2


def parallel_requests(port: int, paths: list[str]) -> tuple[list[tuple[int, dict[str, str], bytes, float]],
                                                              list[threading.Thread]]:
    results: list[tuple[int, dict[str, str], bytes, float]] = []
    lock = threading.Lock()

    def one(path: str) -> None:
        result = request(port, path=path)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    return results, threads


def test_scrapes_that_arrive_together_share_one_build(start_helper):
    """Each build takes 1 s here (a slow collector): 12 scrapes at once are served by at most two builds (the
    first, and the one that those arriving during it wait for together), in about 2 s."""
    helper = start_helper("--slow-collect", "1", "--max-builds", "2")
    started = time.monotonic()
    results, threads = parallel_requests(helper.port, ["/metrics"] * 12)
    for thread in threads:
        thread.join(10)
    assert time.monotonic() - started < 3.5
    assert sorted(status for status, *_ in results) == [200] * 12
    builds = {line for _, _, body, _ in results for line in body.splitlines() if line.startswith(b"demo_collections ")}
    assert builds <= {b"demo_collections 1.0", b"demo_collections 2.0"}, builds
    last = request(helper.port)[2]  # built after it arrived: never a stale copy
    assert f"demo_collections {len(builds) + 1}.0".encode() in last
    assert helper.finish() == {"served": 13}


def test_builds_beyond_the_bound_get_503_at_once_and_the_server_stays_responsive(start_helper):
    """12 scrapes that cannot share a build (each its own name[] filter) while each build takes 1 s: 4 are
    built, 8 refused at once."""
    helper = start_helper("--slow-collect", "1", "--max-builds", "4")
    paths = [f"/metrics?name[]=demo_collections&name[]=x{index}" for index in range(12)]
    results, threads = parallel_requests(helper.port, paths)
    time.sleep(0.3)  # the 4 admitted builds are in their collector now
    index_status, _, _, index_seconds = request(helper.port, path="/")
    for thread in threads:
        thread.join(10)
    statuses = sorted(status for status, *_ in results)
    assert statuses == [200] * 4 + [503] * 8
    refused = [seconds for status, _, _, seconds in results if status == 503]
    assert max(refused) < PROMPT, refused
    assert all(headers["Retry-After"] == "1" for status, headers, _, _ in results if status == 503)
    assert (index_status, index_seconds < PROMPT) == (200, True)
    assert request(helper.port)[0] == 200  # the builds' slots are released
    outcomes = helper.finish()
    assert (outcomes["served"], outcomes["busy"], outcomes["index"]) == (5, 8, 1)


def test_oversized_and_malformed_requests_are_answered_and_harm_nothing(start_helper):
    helper = start_helper()
    huge = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n"
    for raw, expected in [(huge, b"HTTP/1.1 431 "), (b"\xff\xfe garbage\r\n\r\n", b"HTTP/1.1 400 "),
                          (b"GET /metrics\r\n\r\n", b"HTTP/1.1 400 ")]:
        with socket.create_connection(("127.0.0.1", helper.port), timeout=5) as sock:
            try:
                sock.sendall(raw)
            except (ConnectionResetError, BrokenPipeError):
                pass  # the server may answer 431 before the whole head is sent
            assert sock.recv(4096).startswith(expected), raw[:30]
    with socket.create_connection(("127.0.0.1", helper.port), timeout=5):
        pass  # connected and closed without a word
    assert request(helper.port)[0] == 200
    assert helper.finish() == {"too_large": 1, "bad_request": 2, "closed": 1, "served": 1}


def test_stopping_closes_the_listener_and_open_connections(start_helper):
    helper = start_helper("--head-timeout", "30")
    idle = open_idle(helper.port, 20)
    started = time.monotonic()
    helper.finish()
    assert time.monotonic() - started < 5
    for sock in idle:
        assert seconds_until_closed(sock, limit=2)[0] < 2
        sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", helper.port), timeout=2).close()


@pytest.mark.usefixtures("starts_processes")
def test_a_metrics_port_in_use_is_one_clear_error_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = subprocess.run([str(RUN_SERVER), "--grpc-addr", "127.0.0.1:0", "--metrics-addr",
                                 address], capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("run-server:")]
    assert errors == [f"run-server: error: --metrics-addr {address}: address already in use"]
    assert "Traceback" not in result.stderr
