"""Snapshot requests that fail: rate limited (429), banned (418), broken (500), or never answered.

Each test arms the REST fault, then drops the exchange's connection so that the rebuild asks for a snapshot.
The simulator counts the requests it receives (``/stats``), polled here: that is how the tests see that the
server waits out ``Retry-After`` rather than trusting the server's own log.
"""

from __future__ import annotations

import time
from itertools import pairwise

import pytest
from resilience_harness import (
    IMMEDIATE,
    MAX_STALL,
    SETTLE,
    RestWatch,
    System,
    changed,
    delta,
    other,
)

from orderbook.rest import RATE_LIMITED_PAUSE

RETRY_AFTER = 2
POLL_SLACK = 0.15
"""How much earlier than it happened the poller may see the second of two requests, relative to the first."""
SNAPSHOT_TIMEOUT = 10.0
"""The server's REST read timeout (FeedSettings.snapshot_timeout)."""


def _snapshot_outage(system: System, exchange: str, status: str, count: int, extra: float) -> list[float]:
    """Arm ``count`` answers of ``status``, drop the connection; return when the snapshot requests came."""
    before = system.metrics()
    system.control.rest(exchange, status, count=count, retry_after=RETRY_AFTER)
    watch = RestWatch(system.simulator.urls["control"], exchange)
    try:
        outage = system.outage(exchange, lambda: system.control.drop(exchange), extra=extra)
    finally:
        arrivals = watch.stop()
    assert outage.detected_after < IMMEDIATE
    after = system.metrics()
    label = {"hang": "network", "200_error": "error_body"}.get(status, status)
    assert changed(before, after, "orderbook_snapshot_errors_total", exchange=exchange) == {f"status={label}": count}
    assert changed(before, after, "orderbook_snapshot_errors_total", exchange=other(exchange)) == {}
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange=exchange) == {"reason=disconnect": 1}
    assert delta(before, after, "orderbook_exchange_connects_total", exchange=exchange) == 1
    assert system.control.stats()[exchange]["rest_faults_pending"] == 0
    return arrivals


@pytest.mark.parametrize(("exchange", "status"), [("binance", "429"), ("bitstamp", "418")])
def test_a_rate_limited_snapshot_is_not_asked_again_before_retry_after(
    system: System, exchange: str, status: str
) -> None:
    arrivals = _snapshot_outage(system, exchange, status, 1, extra=RETRY_AFTER)

    assert len(arrivals) == 2, f"expected the refused request and one retry, saw {len(arrivals)}"
    waited = arrivals[1] - arrivals[0]
    assert RETRY_AFTER - POLL_SLACK <= waited < RETRY_AFTER + 1.0, waited
    assert f"answered HTTP {status}" in system.new_log()
    system.assert_survived()


def test_retry_after_holds_across_a_reconnect(system: System) -> None:
    """The connection breaks again while the server waits out a 429: the new session must wait too."""
    retry_after = 3
    before = system.metrics()
    system.control.rest("binance", "429", count=1, retry_after=retry_after)
    watch = RestWatch(system.simulator.urls["control"], "binance")
    try:
        system.mark_log()
        started = time.monotonic()
        system.control.drop("binance")
        deadline = time.monotonic() + SETTLE
        while not watch.arrivals:
            assert time.monotonic() < deadline, "no snapshot request after the reconnect"
            time.sleep(0.02)
        system.control.drop("binance")  # the second session starts inside the Retry-After window
        back = system.reader.wait_seen(lambda names: "binance" in names, watch.arrivals[0],
                                       retry_after + SETTLE, "with binance again")
    finally:
        arrivals = watch.stop()

    assert len(arrivals) == 2, arrivals
    assert arrivals[1] - arrivals[0] >= retry_after - POLL_SLACK, arrivals
    after = system.metrics()
    assert delta(before, after, "orderbook_exchange_connects_total", exchange="binance") == 2
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange="binance") == {"reason=disconnect": 2}
    assert system.reader.longest_stall("bitstamp", started, back) < MAX_STALL
    system.settle()
    system.assert_survived()


def test_a_failing_snapshot_endpoint_is_retried_with_backoff(system: System) -> None:
    retries_at_most = 0.5 + 1.0  # the retry backoff's first two ceilings
    arrivals = _snapshot_outage(system, "bitstamp", "500", 2, extra=retries_at_most)

    assert len(arrivals) == 3
    delays = system.snapshot_retries("bitstamp")
    assert len(delays) == 2 and sum(delays) <= retries_at_most, delays
    for waited, delay in zip((b - a for a, b in pairwise(arrivals)), delays, strict=False):
        assert waited >= delay - POLL_SLACK, (waited, delay)
    system.assert_survived()


def test_a_snapshot_request_that_never_answers_times_out_and_is_retried(system: System) -> None:
    arrivals = _snapshot_outage(system, "binance", "hang", 1, extra=SNAPSHOT_TIMEOUT + 0.5)

    assert len(arrivals) == 2
    waited = arrivals[1] - arrivals[0]
    assert SNAPSHOT_TIMEOUT - POLL_SLACK <= waited < SNAPSHOT_TIMEOUT + 0.5 + 1.0, waited
    system.assert_survived()


def test_a_bitstamp_rate_limit_body_with_http_200_holds_requests_off(system: System) -> None:
    """Bitstamp answers a rate-limited request with HTTP 200 and {"status": "error", "code": "400.002"}."""
    arrivals = _snapshot_outage(system, "bitstamp", "200_error", 1, extra=RATE_LIMITED_PAUSE + 1.0)

    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= RATE_LIMITED_PAUSE - POLL_SLACK, arrivals
    assert "answered with an error body (error 400.002: 'Rate limit exceeded', rate limited)" in system.new_log()
    system.assert_survived()


def test_a_binance_firewall_block_is_logged_as_such_and_retried_with_backoff(system: System) -> None:
    arrivals = _snapshot_outage(system, "binance", "403", 2, extra=0.5 + 1.0)

    assert len(arrivals) == 3 and all(b - a >= 0.25 - POLL_SLACK for a, b in pairwise(arrivals)), arrivals
    assert "answered HTTP 403 (blocked by Binance's web application firewall)" in system.new_log()
    system.assert_survived()
