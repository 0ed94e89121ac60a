"""The venues as they are in late 2026, end to end on the simulator (issue 22; facts and sources in
docs/protocols.md): Bitstamp's listing from ``GET /api/v2/markets/`` (and the obsolete ``trading-pairs-info`` when
the new one answers 404), a Unicode symbol (Binance's testnet lists ``这是测试币456``), symbols that stop and start
trading while the service runs (the listing read again, ``-1220`` on a snapshot), and Binance's keep-alive (a ping
every 20 s, a pong due within 60 s, here scaled down) while the service's reader is saturated."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.metrics_scrape import scrape
from tests.support.service import Book, symbol_states, wait_until_matches_truth
from tests.support.waiting import wait_until

UNICODE = "这是测试币456"
IN_STEP_WITHIN = 20.0
SMALL_SNAPSHOTS = ("--binance-snapshot-limit", "100")
BOTH = ("binance", "bitstamp")


def states_until(server, accept, what: str, timeout: float = IN_STEP_WITHIN):
    return wait_until(lambda: symbol_states(server.target), timeout, what, accept=accept, interval=0.2)


def lists(server, exchange: str, symbol: str) -> float:
    return scrape(server.metrics_port).value("orderbook_exchange_lists_symbol", exchange=exchange, symbol=symbol)


@pytest.mark.parametrize("listing", ["markets", "trading-pairs-info"])
def test_bitstamp_is_listed_from_markets_or_from_the_old_endpoint_when_markets_answers_404(
        simulator_factory, server_factory, listing):
    simulator = simulator_factory("--rate", "20", "--symbol", "ETHBTC", "--binance-only-symbol", "BTCUSDT",
                                  "--bitstamp-listing", listing)
    server = server_factory(simulator.urls, "--symbol", "ETHBTC,BTCUSDT", *SMALL_SNAPSHOTS)
    server.wait_serving()
    states = states_until(server, lambda s: s["ETHBTC"][1] == BOTH and s["BTCUSDT"][1] == ("binance",),
                          "ETHBTC in step on both venues, BTCUSDT on Binance")
    assert states["BTCUSDT"][0] == ("binance",)
    log = server.log()
    used = "/api/v2/markets/" if listing == "markets" else "/api/v2/trading-pairs-info/"
    assert f"Bitstamp does not list BTCUSDT, which is served without it: not in {simulator.urls['bitstamp_rest']}" \
           f"{used}" in log
    assert ("/api/v2/markets/ answered 404: listing from" in log) == (listing == "trading-pairs-info")
    assert lists(server, "bitstamp", "BTCUSDT") == 0
    assert server.terminate() == 0


def test_a_unicode_symbol_is_served_from_binance_and_left_out_on_bitstamp(simulator_factory, server_factory):
    simulator = simulator_factory("--rate", "20", "--symbol", "ETHBTC", "--binance-only-symbol", UNICODE)
    server = server_factory(simulator.urls, "--symbol", f"ETHBTC,{UNICODE}", *SMALL_SNAPSHOTS)
    server.wait_serving()
    states = states_until(server, lambda s: s.get(UNICODE, ((), ()))[1] == ("binance",), f"{UNICODE} in step")
    assert list(states) == ["ETHBTC", UNICODE] and states[UNICODE][0] == ("binance",)
    log = server.log()
    assert f"binance {UNICODE}: in step from snapshot" in log
    assert f"Bitstamp does not list {UNICODE}, which is served without it: Bitstamp has no name for it" in log
    assert log.count(f"Bitstamp does not list {UNICODE}") == 1
    assert lists(server, "binance", UNICODE) == 1 and lists(server, "bitstamp", UNICODE) == 0
    # bin/client carries it intact: --list (ladder and --json) and its book.
    client = [sys.executable, "-m", "orderbook.client", "--addr", server.target]
    listed = subprocess.run([*client, "--list", "--json"], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(listed.stdout.splitlines()[1]) == {"symbol": UNICODE, "exchanges": ["binance"],
                                                         "exchanges_in_step": ["binance"], "default": False}
    assert UNICODE in listed.stdout  # UTF-8, not \u escapes
    table = subprocess.run([*client, "--list"], capture_output=True, text=True, timeout=30, check=True)
    assert table.stdout.splitlines()[2].startswith(f"{UNICODE}  binance")
    book = subprocess.run([*client, "--symbol", UNICODE, "--json", "--count", "1"], capture_output=True, text=True,
                          timeout=30, check=True)
    summary = json.loads(book.stdout)
    assert summary["bids"] and {level["exchange"] for level in summary["bids"] + summary["asks"]} == {"binance"}
    assert server.terminate() == 0


def test_a_symbol_that_stops_trading_on_one_venue_is_served_from_the_other_and_taken_back(
        simulator_factory, server_factory):
    simulator = simulator_factory("--rate", "20", "--symbol", "ETHBTC,BTCUSDT")
    server = server_factory(simulator.urls, "--symbol", "ETHBTC,BTCUSDT", "--listing-interval", "1",
                            *SMALL_SNAPSHOTS)
    server.wait_serving()
    states_until(server, lambda s: s["BTCUSDT"][1] == BOTH, "BTCUSDT in step on both venues")
    simulator.control.fault("status", exchange="binance", symbol="BTCUSDT", status="BREAK")
    states = states_until(server, lambda s: s["BTCUSDT"] == (("bitstamp",), ("bitstamp",)),
                          "BTCUSDT served from Bitstamp alone", timeout=10)
    assert states["ETHBTC"][1] == BOTH  # the other symbol untouched
    assert lists(server, "binance", "BTCUSDT") == 0
    assert "Binance: BTCUSDT does not trade there now, served without it until it does: BREAK in" in server.log()
    simulator.control.fault("status", exchange="binance", symbol="BTCUSDT", status="TRADING")
    states_until(server, lambda s: s["BTCUSDT"] == (BOTH, BOTH), "BTCUSDT back on Binance, in step", timeout=15)
    assert lists(server, "binance", "BTCUSDT") == 1
    log = server.log()
    assert "Binance: BTCUSDT trades there again, rebuilding its book: TRADING in" in log
    assert log.count("binance BTCUSDT: in step from snapshot") == 2  # a fresh snapshot, not the old book
    # Bitstamp disables a pair: the same, on the other venue.
    simulator.control.fault("status", exchange="bitstamp", symbol="BTCUSDT", status="Disabled")
    states_until(server, lambda s: s["BTCUSDT"] == (("binance",), ("binance",)), "BTCUSDT on Binance alone",
                 timeout=10)
    simulator.control.fault("status", exchange="bitstamp", symbol="BTCUSDT", status="Enabled")
    states_until(server, lambda s: s["BTCUSDT"] == (BOTH, BOTH), "BTCUSDT back on Bitstamp", timeout=20)
    assert server.terminate() == 0
    assert "Traceback" not in server.log()


def test_a_symbol_listed_later_is_taken_up_without_a_restart(simulator_factory, server_factory, reader_factory):
    """Configured ahead of its listing on Bitstamp: served from Binance alone, then from both once Bitstamp lists
    it, on the connection that carried its (silent) subscription, from a fresh snapshot: the true book."""
    simulator = simulator_factory("--rate", "20", "--symbol", "ETHBTC,BTCUSDT")
    simulator.control.fault("listed", exchange="bitstamp", symbol="BTCUSDT", on=False)
    server = server_factory(simulator.urls, "--symbol", "ETHBTC,BTCUSDT", "--listing-interval", "1",
                            *SMALL_SNAPSHOTS)
    server.wait_serving()
    states_until(server, lambda s: s["BTCUSDT"] == (("binance",), ("binance",)), "BTCUSDT on Binance alone")
    assert lists(server, "bitstamp", "BTCUSDT") == 0
    assert "Bitstamp does not list BTCUSDT, which is served without it: not in" in server.log()
    simulator.control.fault("listed", exchange="bitstamp", symbol="BTCUSDT", on=True)
    states = states_until(server, lambda s: s["BTCUSDT"] == (BOTH, BOTH), "BTCUSDT taken up on Bitstamp")
    assert states["ETHBTC"] == (BOTH, BOTH)
    assert lists(server, "bitstamp", "BTCUSDT") == 1
    reader = reader_factory(server.target, "BTCUSDT")
    simulator.control.pause()
    served = wait_until_matches_truth(
        reader, lambda: Book.from_truth(simulator.control.truth(10, symbol="BTCUSDT")["merged"]), 10)
    assert served.exchanges() == set(BOTH)
    log = server.log()
    assert "Bitstamp: BTCUSDT trades there again, rebuilding its book" in log
    assert "bitstamp: connected" in log and log.count("bitstamp: connected") == 1  # no reconnect, no restart
    assert server.terminate() == 0


def test_a_symbol_no_venue_lists_any_more_is_served_with_no_venue_not_an_exit(
        simulator_factory, server_factory, reader_factory):
    simulator = simulator_factory("--rate", "20", "--symbol", "ETHBTC,BTCUSDT")
    server = server_factory(simulator.urls, "--symbol", "ETHBTC,BTCUSDT", "--listing-interval", "1",
                            *SMALL_SNAPSHOTS)
    server.wait_serving()
    states_until(server, lambda s: s["BTCUSDT"] == (BOTH, BOTH), "BTCUSDT in step on both venues")
    reader = reader_factory(server.target, "BTCUSDT")
    reader.wait_for(lambda book: book.exchanges() == set(BOTH), 10, "BTCUSDT from both venues")
    for exchange in BOTH:
        simulator.control.fault("listed", exchange=exchange, symbol="BTCUSDT", on=False)
    states = states_until(server, lambda s: s["BTCUSDT"] == ((), ()), "BTCUSDT with no venue", timeout=10)
    assert states["ETHBTC"] == (BOTH, BOTH)  # the default symbol untouched, and the service on
    reader.wait_for(lambda book: not book.bids and not book.asks, 5, "an empty BTCUSDT book")
    assert server.proc.poll() is None
    assert "BTCUSDT: no venue lists it or trades it now; served with no venue until one does" in server.log()
    assert lists(server, "binance", "BTCUSDT") == lists(server, "bitstamp", "BTCUSDT") == 0
    simulator.control.fault("listed", exchange="binance", symbol="BTCUSDT", on=True)
    states_until(server, lambda s: s["BTCUSDT"] == (("binance",), ("binance",)), "BTCUSDT back on Binance")
    assert server.terminate() == 0


def test_a_snapshot_answered_1220_leaves_the_symbol_out_at_once(simulator_factory, server_factory):
    simulator = simulator_factory("--rate", "20", "--symbol", "ETHBTC,BTCUSDT")
    server = server_factory(simulator.urls, "--symbol", "ETHBTC,BTCUSDT", *SMALL_SNAPSHOTS)  # listing every 300 s
    server.wait_serving()
    states_until(server, lambda s: s["BTCUSDT"][1] == BOTH, "BTCUSDT in step on both venues")
    # HALT: "market data is still generated", so the stream goes on; a gap makes the service ask for a snapshot,
    # which symbolStatus=TRADING answers with -1220 long before the next listing.
    simulator.control.fault("status", exchange="binance", symbol="BTCUSDT", status="HALT")
    simulator.control.gap(events=3, symbol="BTCUSDT")
    states_until(server, lambda s: s["BTCUSDT"] == (("bitstamp",), ("bitstamp",)), "BTCUSDT left out on Binance",
                 timeout=10)
    assert '-1220' in server.log()
    assert server.terminate() == 0


PING_INTERVAL = 1.0
PONG_TIMEOUT = 5.0
"""Binance's 20 s and 60 s, scaled down so that several pings fall within the overload. A ping a second keeps the
pongs well under Binance's 5 incoming messages a second, the service's own keep-alive pings included. The kernel's
buffers are not scaled down with them: a pong is 0.4-0.7 s late here, 1.3-2.1 s beside ``stress --cpu 2``."""
BURST = 300_000
"""Events queued at once: 53 MB of frames (under the simulator's 64 MiB a connection), 5-6 s of reading for the
service here, 10-15 s beside ``stress --cpu 2``."""


def test_pongs_go_out_in_time_while_the_reader_is_saturated(simulator_factory, server_factory, reader_factory):
    """A burst keeps the service's reader busy for seconds. The simulator pings ahead of the frames it has not
    written yet, as a server's keep-alive does, so a ping is behind only what the kernel holds (about 4 MB, the
    simulator's socket send buffer) and its pong is late by the time the reader takes to read that, a tenth of the
    backlog's: no pong over the timeout, the connection kept, the book exact once the backlog is read. (Were the
    pings queued behind the backlog, the pong would be as late as the backlog is long.)"""
    simulator = simulator_factory("--rate", "20", "--symbol", "ETHBTC", "--binance-ping-interval", str(PING_INTERVAL),
                                  "--binance-pong-timeout", str(PONG_TIMEOUT))
    server = server_factory(simulator.urls, "--symbol", "ETHBTC", "--max-lag", "60", "--audit-interval", "0",
                            *SMALL_SNAPSHOTS)
    server.wait_serving()
    states_until(server, lambda s: s["ETHBTC"][1] == BOTH, "ETHBTC in step on both venues")
    reader = reader_factory(server.target, "ETHBTC")
    simulator.control.pause()
    queued_at = simulator.control.burst("binance", BURST)["queued_at"]  # this host's monotonic clock
    wait_until_matches_truth(reader, lambda: Book.from_truth(simulator.control.truth(10)["merged"]), 120)
    busy = time.monotonic() - queued_at
    stats = simulator.control.stats()["binance"]
    delay = stats["pong_delay_max"]
    print(f"reader busy {busy:.1f} s with the backlog; the latest pong {delay:.2f} s after its ping")
    assert busy > 3 * PING_INTERVAL, f"the backlog took {busy:.2f} s to read: not a saturated reader"
    assert stats["pong_timeouts"] == 0 and stats["flood_disconnects"] == 0, stats
    assert delay < busy / 4, f"a pong {delay:.2f} s late, behind the backlog ({busy:.1f} s), not the kernel's bytes"
    assert scrape(server.metrics_port).value("orderbook_exchange_connects_total", exchange="binance") == 1
    assert server.terminate() == 0
