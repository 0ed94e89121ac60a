"""The simulator as a process: its URL line, clean exit on signals, refusal of bad settings, control basics."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from typing import Any

import pytest
import requests
from simulator_support import connect, recv_json

from orderbook.simulator.process import EXCHANGE_SIM, SimulatorControl, SimulatorError, SimulatorProcess
from tests.support.waiting import wait_until


@pytest.mark.usefixtures("starts_processes")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_prints_base_urls_and_exits_0_promptly_on_signal(sig):
    process = SimulatorProcess("--rate", "500").start()
    assert set(process.urls) == {"binance_ws", "binance_rest", "bitstamp_ws", "bitstamp_rest", "control"}
    assert process.urls["binance_ws"].startswith("ws://127.0.0.1:")
    assert process.urls["binance_ws"].removeprefix("ws") == process.urls["binance_rest"].removeprefix("http")
    ws = connect(f"{process.urls['binance_ws']}/ws/ethbtc@depth@100ms")
    recv_json(ws)
    started = time.monotonic()
    process.send_signal(sig)
    assert process.wait(5) == 0
    assert time.monotonic() - started < 3
    process.stop()


@pytest.mark.usefixtures("starts_processes")
def test_bad_settings_exit_2_before_listening():
    result = subprocess.run([str(EXCHANGE_SIM), "--rate", "0"], capture_output=True, timeout=20)
    assert result.returncode == 2 and not result.stdout
    assert result.stderr == b"exchange-sim: error: binance_rate must be in (0, 100000], got 0.0\n"
    result = subprocess.run([str(EXCHANGE_SIM), "--rate", "fast"], capture_output=True, timeout=20)
    assert (result.returncode, result.stderr) == (2, b"exchange-sim: error: --rate: expected a number, got 'fast'\n")
    with pytest.raises(SimulatorError, match="exited with code 2"):
        SimulatorProcess("--replay-binance", "no_such_set").start()


def test_pause_freezes_truth_and_rate_changes_the_flow(make_sim):
    process = make_sim("--rate", "100", "--levels", "40")
    control = process.control
    control.pause()
    first = control.truth()
    time.sleep(0.3)  # a while in which nothing may change: a "never" is watched for a time
    assert control.truth() == first
    assert first["paused"] is True and 40 <= len(first["binance"]["bids"]) <= 50
    assert len(control.truth(depth=5)["bitstamp"]["asks"]) == 5
    before = control.stats()
    assert control.set_rate(binance=2000)["rates"]["binance"] == 2000.0
    control.resume()
    # Counted, not timed: the venues run side by side in one process, so however fast the machine, Binance at
    # 2,000 a second sends some 20 times what Bitstamp at 100 does meanwhile.
    stats = wait_until(control.stats, 10, "500 more Binance events", interval=0.05,
                       accept=lambda now: now["binance"]["events"] - before["binance"]["events"] >= 500)
    sent = {name: stats[name]["events"] - before[name]["events"] for name in ("binance", "bitstamp")}
    assert sent["bitstamp"] < sent["binance"] / 4, sent
    assert stats["bitstamp"]["rate"] == 100.0
    with pytest.raises(SimulatorError, match="rate"):
        control.set_rate(binance=0)


def test_truth_merged_uses_the_product_merge_rule(make_sim):
    process = make_sim("--paused")
    truth = process.control.truth(depth=10)
    merged = truth["merged"]
    assert len(merged["bids"]) == len(merged["asks"]) == 10
    prices = [float(level["price"]) for level in merged["bids"]]
    assert prices == sorted(prices, reverse=True)
    best = max(float(truth[name]["bids"][0][0]) for name in ("binance", "bitstamp"))
    assert float(merged["bids"][0]["price"]) == best
    spread = float(merged["asks"][0]["price"]) - float(merged["bids"][0]["price"])
    assert abs(float(merged["spread"]) - spread) < 1e-9
    assert requests.get(f"{process.urls['control']}/nowhere", timeout=5).status_code == 404


def test_a_burst_queues_its_events_at_once_and_leaves_the_truth_where_they_end(make_sim):
    process = make_sim("--rate", "50", "--levels", "60")
    control = process.control
    with pytest.raises(SimulatorError, match="pause the market first"):
        control.burst("binance", 10)
    ws = connect(f"{process.urls['binance_ws']}/ws/ethbtc@depth@100ms")
    recv_json(ws)  # subscribed once a frame arrives
    control.pause()
    ws.settimeout(0.2)  # what was sent before the pause took effect, drained
    try:
        while True:
            ws.recv()
    except Exception:  # noqa: BLE001 - the stream went quiet: nothing but the burst comes now
        pass
    before = control.stats()["binance"]["events"]
    answer = control.burst("binance", 500)
    assert answer["events"] == 500 and answer["queued_at"] <= time.monotonic()
    ws.settimeout(5)
    events = [recv_json(ws) for _ in range(500)]
    assert [event["U"] for event in events[1:]] == [event["u"] + 1 for event in events[:-1]]
    assert control.stats()["binance"]["events"] - before == 500
    (probe,) = control.probe_records()  # the last event is a probe: its marker tells a client it has them all
    _, exchange, sent_at, queued_at = probe
    assert exchange == "binance" and queued_at <= answer["queued_at"] <= sent_at  # written once the burst was queued
    truth = control.truth()
    assert control.truth() == truth  # still paused: the burst was all
    ws.close()
    refused: list[dict[str, Any]] = [{"exchange": "kraken", "events": 1}, {"exchange": "binance", "events": 0},
                                      {"exchange": "binance", "events": True},
                                      {"exchange": "binance", "events": 1, "rate": 2}]
    for bad in refused:
        assert requests.post(f"{process.urls['control']}/burst", json=bad, timeout=5).status_code == 400


def test_a_long_burst_keeps_the_keepalive_and_the_control_api_going(make_sim):
    """The model steps of a long burst take turns with the rest of the simulator: pings go out and pongs are read
    meanwhile, and the control API answers, while the data frames wait to go out together once all are queued."""
    # A pong timeout with room for a loaded machine (the simulator's keep-alive itself waits its turn for the CPU):
    # what is shown is that pings go out and pongs are read while the burst is queued, not how fast.
    process = make_sim("--rate", "20", "--binance-ping-interval", "0.25", "--binance-pong-timeout", "5")
    control = process.control
    ws = connect(f"{process.urls['binance_ws']}/ws/ethbtc@depth@100ms")
    recv_json(ws)
    control.pause()
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 0.5:  # what was sent before the pause (pings keep coming)
        if ws.recv_data_frame(control_frame=True)[0] != 0x9:
            quiet_since = time.monotonic()
    events = 150_000  # 2.5 s of model steps here
    answer: dict[str, Any] = {}
    other = SimulatorControl(process.urls["control"])  # a requests.Session is not shared between threads
    bursting = threading.Thread(target=lambda: answer.update(other.burst("binance", events)))
    bursting.start()
    ws.settimeout(20)
    pings = 0
    while (frame := ws.recv_data_frame(control_frame=True))[0] == 0x9:  # answered by websocket-client (4 a second:
        # under Binance's 5 messages)
        pings += 1
        assert control.stats()["binance"]["connections_open"] == 1  # the control API answers meanwhile
    bursting.join(30)
    assert pings >= 3, f"{pings} pings while the burst was queued"
    assert answer["events"] == events and "U" in json.loads(frame[1].data)  # then the data, all of it
    received = 1 + sum(1 for _ in range(events - 1) if ws.recv())
    stats = control.stats()["binance"]
    assert received == events and stats["pong_timeouts"] == 0 and stats["pong_delay_max"] < 5, stats
    other.end_session()
    ws.close()
