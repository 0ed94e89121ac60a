"""Every fault, asserted on what a client observes."""

from __future__ import annotations

import json
import time

import pytest
import requests
from simulator_support import connect, drain_until_end, next_event, quiet_for, recv_json, recv_until

from orderbook.simulator.process import SimulatorError
from tests.support.waiting import wait_until

BINANCE_STREAM = "/ws/ethbtc@depth@100ms"
DIFF = "diff_order_book_ethbtc"


def bitstamp_subscriber(sim):
    ws = connect(f"{sim.urls['bitstamp_ws']}/")
    ws.send(json.dumps({"event": "bts:subscribe", "data": {"channel": DIFF}}))
    assert recv_json(ws)["event"] == "bts:subscription_succeeded"
    return ws


def binance_subscriber(sim):
    ws = connect(f"{sim.urls['binance_ws']}{BINANCE_STREAM}")
    recv_json(ws)
    return ws


@pytest.mark.parametrize("exchange", ["binance", "bitstamp"])
def test_drop_resets_without_close_frame(sim, exchange):
    ws = binance_subscriber(sim) if exchange == "binance" else bitstamp_subscriber(sim)
    assert sim.control.drop(exchange)["connections"] >= 1
    kind, _, _ = drain_until_end(ws)
    assert kind == "reset"


@pytest.mark.parametrize("exchange", ["binance", "bitstamp"])
def test_close_sends_a_close_frame(sim, exchange):
    ws = binance_subscriber(sim) if exchange == "binance" else bitstamp_subscriber(sim)
    sim.control.close(exchange, code=1001, reason="bye")
    kind, code, _ = drain_until_end(ws)
    assert (kind, code) == ("close", 1001)


def test_gap_skips_update_ids(sim):
    ws = connect(f"{sim.urls['binance_ws']}{BINANCE_STREAM}")
    events = [recv_json(ws)]
    sim.control.gap(events=3)
    events += [recv_json(ws) for _ in range(60)]
    ws.close()
    jumps = [(a["u"], b["U"]) for a, b in zip(events, events[1:]) if b["U"] != a["u"] + 1]
    assert len(jumps) == 1 and jumps[0][1] - jumps[0][0] >= 4  # three events' ids (>= 1 each) never sent
    assert sim.control.stats()["binance"]["events_hidden"] == 3


def test_stale_snapshot_is_older_than_the_stream_then_fresh_again(sim):
    stale_id = sim.control.stale_snapshot(count=1)["last_update_id"]
    wait_until(lambda: sim.control.stats()["binance"]["last_update_id"], 5, "the stream past the stale snapshot",
               accept=lambda last: last > stale_id, interval=0.02)
    ws = binance_subscriber(sim)
    first = recv_json(ws)
    url = f"{sim.urls['binance_rest']}/api/v3/depth"
    stale = requests.get(url, params={"symbol": "ETHBTC"}, timeout=5).json()
    fresh = requests.get(url, params={"symbol": "ETHBTC"}, timeout=5).json()
    ws.close()
    assert stale["lastUpdateId"] < first["U"]
    assert fresh["lastUpdateId"] >= first["u"]


def test_server_shutdown_with_close_after_0_closes_right_after_the_event(sim):
    ws = binance_subscriber(sim)
    sim.control.server_shutdown(close_after=0)
    kind, code, texts = drain_until_end(ws)
    assert json.loads(texts[-1]).keys() == {"e", "E"} and json.loads(texts[-1])["e"] == "serverShutdown"
    assert (kind, code) == ("close", 1001)


def test_request_reconnect_then_close_after_the_delay(sim):
    ws = bitstamp_subscriber(sim)
    sim.control.request_reconnect(after=0.6)
    recv_until(ws, lambda m: m["event"] == "bts:request_reconnect")
    asked = time.monotonic()
    kind, _, texts = drain_until_end(ws)
    assert kind == "close" and texts  # data kept flowing until the close
    assert 0.4 < time.monotonic() - asked < 2.0


def test_reorder_delivers_two_diffs_out_of_order(sim):
    ws = bitstamp_subscriber(sim)
    sim.control.reorder()
    stamps = [int(recv_json(ws)["data"]["microtimestamp"]) for _ in range(80)]
    ws.close()
    backwards = [i for i in range(1, len(stamps)) if stamps[i] <= stamps[i - 1]]
    assert len(backwards) == 1


@pytest.mark.parametrize("exchange", ["binance", "bitstamp"])
def test_silence_mutes_data_pongs_and_replies_but_keeps_tcp(make_sim, exchange):
    process = make_sim("--rate", "100")
    subscriber = binance_subscriber if exchange == "binance" else bitstamp_subscriber
    ws = subscriber(process)
    process.control.silence(exchange)
    assert drain_until_end(ws, 0.3)[0] == "timeout"  # whatever was queued before, then nothing
    assert quiet_for(ws, 0.5)
    ws.ping(b"anyone?")
    ws.send(json.dumps({"event": "bts:heartbeat"} if exchange == "bitstamp"
                       else {"method": "LIST_SUBSCRIPTIONS", "id": 1}))
    assert next_event(ws, 0.5) == ("timeout", None)  # no pong, no reply, and no reset either
    if exchange == "binance":
        newcomer = connect(f"{process.urls['binance_ws']}{BINANCE_STREAM}")
    else:
        newcomer = connect(f"{process.urls['bitstamp_ws']}/")
        newcomer.send(json.dumps({"event": "bts:subscribe", "data": {"channel": DIFF}}))
    assert quiet_for(newcomer, 0.3)  # a new connection is silent too: not even a subscription reply
    newcomer.shutdown()  # no closing handshake: a silent server would not answer it
    process.control.silence(exchange, on=False)
    assert next_event(ws, 2)[0] == "text"
    ws.close()


def test_rest_faults_429_418_500_then_normal(sim):
    url = f"{sim.urls['binance_rest']}/api/v3/depth"
    sim.control.rest("binance", 429, retry_after=7)
    sim.control.rest("binance", 418)
    sim.control.rest("binance", 500, count=2)
    answers = [requests.get(url, params={"symbol": "ETHBTC"}, timeout=5) for _ in range(5)]
    assert [a.status_code for a in answers] == [429, 418, 500, 500, 200]
    assert answers[0].headers["Retry-After"] == "7"
    assert answers[0].json()["code"] == -1003
    bitstamp_url = f"{sim.urls['bitstamp_rest']}/api/v2/order_book/ethbtc/"
    sim.control.rest("bitstamp", 429, retry_after=3)
    limited = requests.get(bitstamp_url, timeout=5)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
    assert requests.get(bitstamp_url, timeout=5).status_code == 200


def test_rest_hang_never_answers(sim):
    sim.control.rest("bitstamp", "hang")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{sim.urls['bitstamp_rest']}/api/v2/order_book/ethbtc/", timeout=0.5)
    assert requests.get(f"{sim.urls['bitstamp_rest']}/api/v2/order_book/ethbtc/", timeout=5).status_code == 200


def kind_check(kind: str, text: str, exchange: str) -> bool:
    if kind == "not_json":
        try:
            json.loads(text)
        except ValueError:
            return True
        return False
    message = json.loads(text)
    if kind == "unknown_shape":
        return message.get("e") != "depthUpdate" and "microtimestamp" not in str(message)
    data = message if exchange == "binance" else message["data"]
    levels = data["b"] if exchange == "binance" else data["bids"]
    if kind == "huge":
        return len(text) >= 3_000_000
    value = {"non_numeric": "abc", "negative": "-1.00000000", "nan": "NaN"}[kind]
    return any(value in level for level in levels)


@pytest.mark.parametrize("exchange", ["binance", "bitstamp"])
def test_malformed_frames_of_every_kind(sim, exchange):
    ws = binance_subscriber(sim) if exchange == "binance" else bitstamp_subscriber(sim)
    for kind in ("not_json", "unknown_shape", "non_numeric", "negative", "nan", "huge"):
        sim.control.malformed(exchange, kind, size=3_000_000 if kind == "huge" else None)
        found = False
        for _ in range(500):
            event, text = next_event(ws, 5)
            assert event == "text"
            if kind_check(kind, text, exchange):
                found = True
                break
        assert found, kind
    ws.close()


def test_cross_makes_the_merged_spread_negative(sim):
    sim.control.pause()
    try:
        result = sim.control.cross()
        truth = sim.control.truth(depth=1)
        assert result["spread"].startswith("-")
        assert truth["merged"]["spread"] == result["spread"]
        assert truth["merged"]["bids"][0]["exchange"] != truth["merged"]["asks"][0]["exchange"]
    finally:
        sim.control.resume()


def test_bad_fault_requests_are_refused(sim):
    with pytest.raises(SimulatorError, match="unknown fault"):
        sim.control.fault("meteor")
    with pytest.raises(SimulatorError, match="exchange must be one of"):
        sim.control.fault("gap", exchange="bitstamp")
    with pytest.raises(SimulatorError, match="unknown parameters"):
        sim.control.fault("drop", exchange="binance", colour="red")
    with pytest.raises(SimulatorError, match="kind"):
        sim.control.malformed("binance", "sparkly")
