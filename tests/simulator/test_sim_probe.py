"""Latency probes: marker amounts at a venue's best bid, their keys, and their send times on the control API."""

from __future__ import annotations

import time

import pytest
from simulator_support import connect, recv_until

from orderbook.prices import SCALE, parse_decimal
from orderbook.simulator.market import ModelParams, VenueModel
from orderbook.simulator.probe import MARKER_BASE_LOTS, ProbeError, ProbeLog, marker_key
from orderbook.simulator.process import SimulatorError
from tests.support.waiting import wait_until


def test_marker_keys_read_back_exactly_from_the_float_a_client_gets():
    log = ProbeLog(every=3)
    for _ in range(5):
        key, lots = log.new_marker()
        assert lots == MARKER_BASE_LOTS + key
    for key in (1, 5, 12_345, 999_999_999):
        amount = (MARKER_BASE_LOTS + key) * 10**4 / SCALE  # lots -> scaled -> the float on the wire
        assert marker_key(amount) == key
    assert marker_key(49.99999999) is None
    assert marker_key(0.001) is None


def test_probe_log_validates_and_returns_records_after_a_key():
    log = ProbeLog()
    assert log.every == 0
    with pytest.raises(ProbeError):
        log.set_every(-1)
    with pytest.raises(ProbeError):
        log.set_every(True)
    for key, exchange in ((1, "binance"), (2, "bitstamp"), (3, "binance")):
        log.record(key, exchange, float(key))
    assert log.sent(1) == [(2, "bitstamp", 2.0, 2.0), (3, "binance", 3.0, 3.0)]  # not written: sent when queued
    assert log.sent() == log.sent(0) and len(log.sent()) == 3
    log.written(2, 2.5)
    log.written(2, 2.7)  # a frame to another connection, later: the first write is the send
    assert log.sent(1) == [(2, "bitstamp", 2.5, 2.0), (3, "binance", 3.0, 3.0)]


def test_marking_the_best_bid_changes_only_that_level_and_not_the_random_stream():
    marked, plain = VenueModel(7, ModelParams(levels=50)), VenueModel(7, ModelParams(levels=50))
    best = marked.best_bid()
    change = marked.mark_best_bid(MARKER_BASE_LOTS + 1)
    assert change.bids == ((best, (MARKER_BASE_LOTS + 1) * 10**4),) and change.asks == ()
    assert marked.levels()[0][0] == (best, (MARKER_BASE_LOTS + 1) * 10**4)
    for _ in range(20):  # the same events follow (the marked amount aside)
        assert marked.step() == plain.step()


def test_probes_arrive_in_frames_and_their_send_times_are_on_the_control_api(make_sim):
    process = make_sim("--rate", "400", "--probe-every", "4")
    ws = connect(f"{process.urls['binance_ws']}/ws/ethbtc@depth@100ms")
    frame = recv_until(ws, lambda event: any(float(a) >= 1000 for _, a in event.get("b", [])), timeout=5)
    received_at = time.monotonic()
    ws.close()
    amount = next(a for _, a in frame["b"] if float(a) >= 1000)
    key = marker_key(parse_decimal(amount) / SCALE)
    records = process.control.probe_records()
    sent = {k: (exchange, at) for k, exchange, at, _ in records}
    assert key in sent
    exchange, sent_at = sent[key]
    assert exchange == "binance" and 0 <= received_at - sent_at < 2.0
    assert all(queued_at <= sent_at for _, _, sent_at, queued_at in records)  # written once queued, never before
    assert any(queued_at < sent_at for _, _, sent_at, queued_at in records)  # the write time, not the queued one
    assert {exchange for exchange, _ in sent.values()} == {"binance", "bitstamp"}
    later = max(sent)
    assert all(k > later for k, _, _ in process.control.probes(since=later))


def test_probes_can_be_switched_off_and_bad_settings_are_refused(make_sim):
    process = make_sim("--rate", "400")
    control = process.control
    time.sleep(0.2)  # a while of traffic ...
    assert control.probes() == []  # ... and no probe: none by default
    assert control.set_probe(2) == {"every": 2}
    wait_until(lambda: len(control.probes()), 5, "more than 10 probes", accept=lambda n: n > 10, interval=0.02)
    control.set_probe(0)  # in effect once answered: the control API and the feeds share one hub
    count = len(control.probes())
    time.sleep(0.3)  # a while of traffic ...
    assert len(control.probes()) == count  # ... and no new probe
    with pytest.raises(SimulatorError, match="every"):
        control.set_probe(-1)
