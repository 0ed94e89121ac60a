"""Slow and stalled clients must not delay the others, nor make the server buffer without bound.

The normal clients' delay is measured twice, without and with 200 slow readers and one that never reads:
- the gaps between summaries while the market moves (a server held up by a slow stream would open long gaps);
- the settle time: pause the market and time how long until every normal client holds the final summary, which
  must also be the simulator's true book (a stale or late summary shows up here directly).
The machine is shared and has two cores, so the comparison allows a generous margin; a server that waited on
its slow or stalled streams would blow through it (0.2 s per slow read, forever for the stalled one).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import cast

import pytest
from clients_support import Samples, StreamGroup, scrape

from orderbook.proto import orderbook_pb2
from orderbook.simulator.process import SimulatorControl
from tests.support.service import Book
from tests.support.waiting import wait_until

NORMAL = 10
SLOW = 200
SLOW_DELAY = 0.2
WINDOW = 8.0
PROBES = 4
QUIET = 0.5
MEMORY_BOUND = 50 << 20


@dataclass(frozen=True)
class Delivery:
    published: float
    """Summaries the server published during the window."""
    ratio: float
    """The worst normal client's share of them (1.0: it saw every one; less: some were conflated)."""
    gap_p50: float
    gap_p99: float
    """Median and 99th percentile of the time between two summaries at a normal client, over all of them."""
    settle: float
    """Median over the probes of: market paused -> the last normal client holds the final summary."""


def watch(group: StreamGroup, metrics_port: int, seconds: float,
          samples: list[Samples]) -> tuple[float, float, float, float]:
    """Watch the normal clients for ``seconds``, scraping /metrics once a second into ``samples``."""
    before = scrape(metrics_port)
    start = time.monotonic()
    counts = [len(stats.arrivals) for stats in group.stats]
    while time.monotonic() - start < seconds:
        time.sleep(1.0)
        samples.append(scrape(metrics_port))
    end = time.monotonic()
    published = samples[-1].value("orderbook_summaries_published_total") - before.value(
        "orderbook_summaries_published_total")
    received = [len(stats.arrivals) - count for stats, count in zip(group.stats, counts, strict=True)]
    gaps = [
        later - earlier
        for stats in group.stats
        for earlier, later in zip(stats.arrivals, stats.arrivals[1:])
        if start <= earlier and later <= end
    ]
    percentiles = statistics.quantiles(gaps, n=100)
    return published, min(received) / published, percentiles[49], percentiles[98]


def settle_time(group: StreamGroup, control: SimulatorControl) -> float:
    """Pause the market; once the normal clients go quiet, check they all hold the true book; resume."""
    control.pause()
    paused_at = time.monotonic()
    try:
        def last_arrival() -> float:
            return max(stats.arrivals[-1] for stats in group.stats)

        wait_until(lambda: time.monotonic() - last_arrival(), 10, "normal clients quiet",
                   accept=lambda quiet: quiet >= QUIET)
        truth = Book.from_truth(control.truth(10)["merged"])
        served = {Book.from_summary(orderbook_pb2.Summary.FromString(cast(bytes, stats.last))) for stats in group.stats}
        assert served == {truth}, f"normal clients hold {served}, the truth is {truth}"
        return max(0.0, last_arrival() - paused_at)
    finally:
        control.resume()


def measure(group: StreamGroup, metrics_port: int, control: SimulatorControl, samples: list[Samples]) -> Delivery:
    published, ratio, gap_p50, gap_p99 = watch(group, metrics_port, WINDOW, samples)
    settles = []
    for _ in range(PROBES):
        settles.append(settle_time(group, control))
        time.sleep(1.0)
    return Delivery(published, ratio, gap_p50, gap_p99, statistics.median(settles))


@pytest.mark.alone
def test_slow_and_stalled_clients_do_not_delay_normal_ones_and_memory_stays_bounded(
    simulator_factory, server_factory, client_process_factory
):
    simulator = simulator_factory("--seed", "11", "--rate", "200")
    # The slow client process puts its 200 streams on one connection: past the default share (a tenth).
    server = server_factory(simulator.urls, "--max-streams-per-connection", str(SLOW))
    server.wait_serving()
    normal = StreamGroup(server.target, NORMAL)
    try:
        wait_until(normal.started, 10, "normal clients streaming", accept=lambda n: n == NORMAL)
        time.sleep(1.0)  # past the start-up burst
        baseline_samples: list[Samples] = []
        baseline = measure(normal, server.metrics_port, simulator.control, baseline_samples)
        rss_before = baseline_samples[-1].value("process_resident_memory_bytes")

        stalled = client_process_factory(server.target, "--streams", "1", "--no-read")
        slow = client_process_factory(server.target, "--streams", str(SLOW), "--delay", str(SLOW_DELAY))
        stalled.wait_ready()
        slow.wait_ready()
        wait_until(lambda: scrape(server.metrics_port).value("orderbook_grpc_open_streams"),
                   10, "every stream open", accept=lambda n: n == NORMAL + SLOW + 1)
        skipped_before = scrape(server.metrics_port).value("orderbook_summaries_skipped_total")
        loaded_samples: list[Samples] = []
        loaded = measure(normal, server.metrics_port, simulator.control, loaded_samples)
        skipped = loaded_samples[-1].value("orderbook_summaries_skipped_total") - skipped_before
    finally:
        normal.close()

    peak_rss = max(sample.value("process_resident_memory_bytes") for sample in loaded_samples)
    print(f"\nbaseline {baseline}\nloaded   {loaded}\nskipped for slow clients: {skipped:.0f}"
          f"\nRSS before {rss_before / 2**20:.1f} MiB, peak under load {peak_rss / 2**20:.1f} MiB")
    # The slow readers really were slow: they skipped summaries instead of queueing them.
    assert skipped > SLOW * WINDOW
    # The server kept up with the market.
    assert loaded.published >= 0.7 * baseline.published
    # The normal clients saw no delay beyond a shared machine's noise (its tail is what CPU contention moves most).
    assert loaded.gap_p50 <= max(3 * baseline.gap_p50, baseline.gap_p50 + 0.1)
    assert loaded.gap_p99 <= max(3 * baseline.gap_p99, baseline.gap_p99 + 0.5)
    assert loaded.settle <= max(3 * baseline.settle, baseline.settle + 0.5)
    assert peak_rss - rss_before < MEMORY_BOUND
    assert server.proc.poll() is None
    assert "Traceback" not in server.log()
