"""Connections that end or go quiet: dropped, closed, moved by the exchange, silent, or merely idle."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from resilience_harness import (
    EXCHANGES,
    IMMEDIATE,
    MAX_STALL,
    SILENCE_TIMEOUT,
    System,
    changed,
    delta,
    other,
)


@pytest.mark.parametrize("exchange", EXCHANGES)
@pytest.mark.parametrize("how", ["drop", "close"])
def test_a_lost_connection_takes_the_exchange_out_at_once_and_it_comes_back_exact(
    system: System, exchange: str, how: str
) -> None:
    before = system.metrics()
    fault = system.control.drop if how == "drop" else system.control.close

    outage = system.outage(exchange, lambda: fault(exchange))

    assert outage.detected_after < IMMEDIATE
    after = system.metrics()
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange=exchange) == {"reason=disconnect": 1}
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange=other(exchange)) == {}
    assert delta(before, after, "orderbook_exchange_connects_total", exchange=exchange) == 1
    system.assert_survived()


def _hand_over(system: System, exchange: str, inject: Callable[[], object], watch_for: float) -> list[float]:
    """Inject a server's request to reconnect; return how long (each time) the exchange was missing from the
    served book while the connection moved."""
    before = system.metrics()
    system.mark_log()
    started = time.monotonic()
    inject()
    time.sleep(watch_for)
    now = time.monotonic()
    after = system.metrics()
    assert delta(before, after, "orderbook_exchange_connects_total", exchange=exchange) == 1
    assert after("orderbook_exchange_in_step", exchange=exchange) == 1
    # A request to move is neither a failure nor a loss of data: no "disconnect" rebuild, no backoff.
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange=exchange) == {"reason=server_request": 1}
    assert changed(before, after, "orderbook_exchange_reconnects_total", exchange=exchange) == {
        "reason=server_request": 1
    }
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange=other(exchange)) == {}
    assert system.backoffs(exchange) == [0.0]
    stall = system.reader.longest_stall(other(exchange), started, now)
    assert stall < MAX_STALL, f"{other(exchange)} stalled for {stall:.2f} s"
    system.settle()
    return system.reader.absences(exchange, started, now)


def test_bitstamp_request_reconnect_hands_over_without_an_outage(system: System) -> None:
    """Bitstamp asks, then closes 2 s later: the old book is served until the new connection's is in step."""
    absences = _hand_over(system, "bitstamp", lambda: system.control.request_reconnect(after=2.0), watch_for=3.0)
    assert absences == [], f"bitstamp left the served book for {absences} s"
    assert system.control.stats()["bitstamp"]["connections_open"] == 1
    system.assert_survived()


def test_binance_server_shutdown_reconnects_at_once_with_at_most_a_blink(system: System) -> None:
    """The simulator closes right after ``serverShutdown``, so the old connection cannot be kept: the outage is
    only the time to reconnect and load a snapshot, with no backoff."""
    absences = _hand_over(system, "binance", system.control.server_shutdown, watch_for=1.5)
    print(f"binance was missing from the served book after serverShutdown for {absences} s")
    assert len(absences) <= 1 and sum(absences) < 0.5, absences
    system.assert_survived()


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_a_silent_open_socket_is_taken_for_dead_within_the_silence_timeout(system: System, exchange: str) -> None:
    before = system.metrics()

    outage = system.outage(
        exchange,
        lambda: system.control.silence(exchange, on=True),
        detect_within=SILENCE_TIMEOUT + IMMEDIATE,
        clear=lambda: system.control.silence(exchange, on=False),
    )

    # Not at once (nothing says the open socket is dead), and not later than the timeout plus a margin.
    assert SILENCE_TIMEOUT - 0.7 < outage.detected_after < SILENCE_TIMEOUT + IMMEDIATE, outage
    after = system.metrics()
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange=exchange) == {"reason=silence": 1}
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange=other(exchange)) == {}
    system.assert_survived()


def test_a_quiet_market_is_not_a_dead_connection(system: System) -> None:
    """No diffs at all for 3x the silence timeout: keepalives (Binance pings, Bitstamp heartbeats) keep both
    connections alive, and the books stay served and exact."""
    settled = system.settle()
    before = system.metrics()
    received = system.reader.received
    time.sleep(3 * SILENCE_TIMEOUT)
    after = system.metrics()

    assert system.reader.received == received, "a summary was published although nothing changed"
    assert system.reader.latest == settled == system.truth()
    for exchange in EXCHANGES:
        assert after("orderbook_exchange_in_step", exchange=exchange) == 1
        assert changed(before, after, "orderbook_book_rebuilds_total", exchange=exchange) == {}
        assert changed(before, after, "orderbook_exchange_connects_total", exchange=exchange) == {}
    # The market really was quiet: Binance sent no frame at all (its pongs are not data frames)...
    assert after("orderbook_last_frame_age_seconds", exchange="binance") > 2 * SILENCE_TIMEOUT
    # ...and what kept Bitstamp's connection busy was the replies to our heartbeats.
    assert after("orderbook_last_frame_age_seconds", exchange="bitstamp") < SILENCE_TIMEOUT
    assert after("orderbook_frames_received_total", exchange="bitstamp") > before(
        "orderbook_frames_received_total", exchange="bitstamp"
    )
    system.assert_survived()
