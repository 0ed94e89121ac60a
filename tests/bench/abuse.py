"""Scenario 7, careless and hostile clients against a real server on loopback: what they cost it.

* Cancels: 500 open streams (quiet market: the simulator sends a few frames a second), then a client that opens a
  BookSummary call, reads its first summary and cancels, 100 times a second. The server's CPU comes from
  /proc/<pid>/stat (utime + stime), over the same window with and without the cancels.
* Scrape storm: 100 connections that send half a request head and stop, plus 100 scrapers in a loop (in their
  own process, so that their work does not slow the measuring side), while one normal scraper times a scrape
  every 100 ms.
* Malformed flood: 3,000 BookSummary calls whose request body is not a protobuf (raw ``b"\\xff\\xff"``), 20 at a
  time; RSS from /proc/<pid>/status before and after.

Run as ``python -m tests.bench.abuse storm PORT SCRAPERS SECONDS`` it is the storm's scraper process: it prints
one JSON line of counts when done.
"""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from orderbook.proto import orderbook_pb2
from tests.bench.live import PYTHON, REPO_ROOT, ClientGroup, Stack, _env
from tests.bench.report import Figure, percentile

METHOD = "/orderbook.OrderbookAggregator/BookSummary"
IDLE_STREAMS = 500
CANCELS_PER_SECOND = 100
CPU_MS_PER_CANCEL = 2.0
SLOW_CONNECTIONS = 100
STORM_SCRAPERS = 100
SCRAPE_EVERY = 0.1
SCRAPE_TIMEOUT = 5.0
"""A normal scrape that takes longer counts as this long (and as failed): Prometheus's default scrape timeout is
10 s, the service's scrape interval 5 s."""
MALFORMED_CALLS = 3_000
MALFORMED_BODY = b"\xff\xff"
HALF_HEAD = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process so far (its own threads; not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _cpu_percent(pid: int, seconds: float) -> float:
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - started)


# -- cancels -------------------------------------------------------------------------------------------------------


def _cancel_loop(target: str, rate: float, seconds: float) -> dict[str, Any]:
    """Open a call, wait for its first summary (at most 1 s), cancel it; ``rate`` times a second, paced."""
    counts: collections.Counter[str] = collections.Counter()
    with grpc.insecure_channel(target) as channel:
        stream = channel.unary_stream(METHOD, request_serializer=orderbook_pb2.Empty.SerializeToString,
                                      response_deserializer=orderbook_pb2.Summary.FromString)
        started = time.monotonic()
        done = 0
        while (elapsed := time.monotonic() - started) < seconds:
            if done > elapsed * rate:
                time.sleep(min(0.005, done / rate - elapsed))
                continue
            call = stream(orderbook_pb2.Empty(), timeout=1.0)
            try:
                next(call)
                counts["summary"] += 1
            except (grpc.RpcError, StopIteration):
                counts["no_summary"] += 1
            call.cancel()
            done += 1
        return {"cancels": done, "seconds": time.monotonic() - started, **counts}


def measure_cancels(stack: Stack, seconds: float) -> dict[str, Any]:
    clients = ClientGroup(stack.server.target, processes=2, streams_each=IDLE_STREAMS // 2,
                          channels_each=IDLE_STREAMS // 2 // 5)
    try:
        streams = clients.wait_ready()
        time.sleep(1.0)
        idle = _cpu_percent(stack.server.pid, seconds)
        result: dict[str, Any] = {}
        canceller = threading.Thread(
            target=lambda: result.update(_cancel_loop(stack.server.target, CANCELS_PER_SECOND, seconds)))
        before, started = cpu_seconds(stack.server.pid), time.monotonic()
        canceller.start()
        canceller.join(seconds + 30)
        busy_seconds, elapsed = cpu_seconds(stack.server.pid) - before, time.monotonic() - started
    finally:
        clients.kill()
    busy = 100 * busy_seconds / elapsed
    rate = result["cancels"] / result["seconds"]
    per_cancel_ms = (busy - idle) / 100 * elapsed / result["cancels"] * 1000 if result["cancels"] else None
    return {"streams": streams, "idle_cpu_percent": idle, "cancel_cpu_percent": busy, "cancels_per_s": rate,
            "cpu_ms_per_cancel": per_cancel_ms, **result}


# -- scrape storm --------------------------------------------------------------------------------------------------


def _scrape_once(port: int, timeout: float) -> tuple[int | None, float]:
    """(HTTP status or None when it failed, seconds) of one scrape on its own connection, read to the end."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(max(0.01, timeout - (time.monotonic() - started)))
            sock.sendall(REQUEST)
            response = bytearray()
            while chunk := sock.recv(65536):
                response += chunk
                if time.monotonic() - started > timeout:
                    raise TimeoutError
        status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.") else None
        return status, time.monotonic() - started
    except OSError:
        return None, time.monotonic() - started


def storm(port: int, scrapers: int, seconds: float) -> dict[str, int]:
    """``scrapers`` threads scraping back to back for ``seconds``: counts by status ("failed" for no answer)."""
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def scrape_until_deadline() -> None:
        while time.monotonic() < deadline:
            status, _ = _scrape_once(port, SCRAPE_TIMEOUT)
            with lock:
                counts[str(status) if status else "failed"] += 1

    threads = [threading.Thread(target=scrape_until_deadline) for _ in range(scrapers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return dict(counts)


def measure_scrapes(port: int, seconds: float) -> dict[str, Any]:
    calm = [_scrape_once(port, SCRAPE_TIMEOUT) for _ in range(10)]
    slow = []
    try:
        for _ in range(SLOW_CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", port), timeout=SCRAPE_TIMEOUT)
            sock.sendall(HALF_HEAD)
            slow.append(sock)
    except OSError as error:  # a server that cannot take them is measured as it is
        slow_error: str | None = f"{type(error).__name__}: {error}"
    else:
        slow_error = None
    scrapers = subprocess.Popen([PYTHON, "-m", "tests.bench.abuse", "storm", str(port), str(STORM_SCRAPERS),
                                 str(seconds + 1)], stdout=subprocess.PIPE, text=True, env=_env(), cwd=REPO_ROOT)
    try:
        time.sleep(1.0)  # the storm is under way
        timed: list[tuple[int | None, float]] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.monotonic()
            timed.append(_scrape_once(port, SCRAPE_TIMEOUT))
            time.sleep(max(0.0, SCRAPE_EVERY - (time.monotonic() - started)))
        out, _ = scrapers.communicate(timeout=seconds + SCRAPE_TIMEOUT + 30)
        storm_counts = json.loads(out.strip().splitlines()[-1])
    finally:
        if scrapers.poll() is None:
            scrapers.kill()
            scrapers.wait()
        for sock in slow:
            sock.close()
    latencies = [seconds if status == 200 else SCRAPE_TIMEOUT for status, seconds in timed]
    return {
        "calm_p50_s": percentile([s for _, s in calm], 0.5),
        "scrapes": len(timed), "failed": sum(1 for status, _ in timed if status != 200),
        "statuses": dict(collections.Counter(str(status) for status, _ in timed)),
        "p50_s": percentile(latencies, 0.5), "p99_s": percentile(latencies, 0.99),
        "max_s": max(latencies, default=None),
        "slow_connections": len(slow), "slow_connection_error": slow_error, "storm": storm_counts,
    }


# -- malformed flood -----------------------------------------------------------------------------------------------


def _malformed_call(stream: Any) -> str:
    try:
        for _ in stream(MALFORMED_BODY, timeout=2.0):
            pass
        return "OK"
    except grpc.RpcError as error:
        return error.code().name


def measure_flood(stack: Stack, calls: int) -> dict[str, Any]:
    pid = stack.server.pid
    time.sleep(0.5)
    before = rss_mb(pid)
    started = time.monotonic()
    with grpc.insecure_channel(stack.server.target) as channel:
        stream: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
            METHOD, request_serializer=None, response_deserializer=None)
        with ThreadPoolExecutor(20) as pool:
            codes = collections.Counter(pool.map(lambda _: _malformed_call(stream), range(calls)))
    elapsed = time.monotonic() - started
    time.sleep(1.0)  # let the server finish whatever the calls left behind
    after = rss_mb(pid)
    return {"calls": calls, "seconds": elapsed, "codes": dict(codes), "rss_before_mb": before, "rss_after_mb": after,
            "rss_growth_mb": after - before}


# -- the scenario ----------------------------------------------------------------------------------------------------


def abuse(workdir: Path, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    seconds = 2.0 if quick else 5.0
    with Stack(workdir, ["--rate", "5"], ["--max-streams", "2000"], name="server-abuse") as stack:
        stack.server.wait_serving()
        cancels = measure_cancels(stack, seconds)
        scrapes = measure_scrapes(stack.server.metrics_port, seconds)
        flood = measure_flood(stack, MALFORMED_CALLS // 3 if quick else MALFORMED_CALLS)
    figures = [
        Figure(f"CPU, {IDLE_STREAMS} idle streams", cancels["idle_cpu_percent"], "%"),
        Figure(f"CPU, + {CANCELS_PER_SECOND} cancels/s", cancels["cancel_cpu_percent"], "%",
               note=f"{cancels['cancels_per_s']:.0f} cancels/s achieved"),
        # A cancel here is a whole call: opened, its first summary sent, then cancelled. What it must not cost is
        # a wake-up of every other stream (with 500 streams, that made it ~3 ms).
        Figure("CPU per cancel", cancels["cpu_ms_per_cancel"], "ms", CPU_MS_PER_CANCEL, "lower",
               note="above the idle CPU"),
        Figure("scrape p50 under storm", scrapes["p50_s"], "s"),
        Figure("scrape p99 under storm", scrapes["p99_s"], "s", 0.5, "lower",
               note=f"{STORM_SCRAPERS} scrapers + {SLOW_CONNECTIONS} half-sent heads; a failed scrape counts as "
                    f"{SCRAPE_TIMEOUT:g} s"),
        Figure("scrapes failed under storm", scrapes["failed"], "count", 0, "lower"),
        Figure(f"RSS growth, {flood['calls']:,} malformed calls", flood["rss_growth_mb"], "MB", 5.0, "lower"),
    ]
    return figures, {"cancels": cancels, "scrapes": scrapes, "flood": flood}


if __name__ == "__main__" and sys.argv[1:2] == ["storm"]:
    print(json.dumps(storm(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))), flush=True)
