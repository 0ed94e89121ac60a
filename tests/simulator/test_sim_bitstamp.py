"""Bitstamp wire protocol as a client sees it."""

from __future__ import annotations

import json

import requests
from simulator_support import connect, quiet_for, recv_json

from orderbook.prices import parse_decimal

DIFF = "diff_order_book_ethbtc"


def subscribe(ws, channel: str, event: str = "bts:subscribe") -> dict:
    ws.send(json.dumps({"event": event, "data": {"channel": channel}}))
    return recv_json(ws)


def test_subscribe_diff_channel_then_unsubscribe(sim):
    ws = connect(f"{sim.urls['bitstamp_ws']}/")
    assert subscribe(ws, DIFF) == {"event": "bts:subscription_succeeded", "channel": DIFF, "data": {}}
    frames = [recv_json(ws) for _ in range(300)]
    for frame in frames:
        assert set(frame) == {"data", "channel", "event"} and (frame["channel"], frame["event"]) == (DIFF, "data")
        assert set(frame["data"]) == {"timestamp", "microtimestamp", "bids", "asks"}
        assert frame["data"]["timestamp"] == frame["data"]["microtimestamp"][:-6]
    stamps = [int(f["data"]["microtimestamp"]) for f in frames]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    zeros = {amount for f in frames for _, amount in f["data"]["bids"] + f["data"]["asks"]
             if parse_decimal(amount) == 0}
    assert zeros == {"0", "0.00000", "0.00000000"}
    ws.send(json.dumps({"event": "bts:unsubscribe", "data": {"channel": DIFF}}))
    while (message := recv_json(ws))["event"] == "data":
        pass
    assert message == {"event": "bts:unsubscription_succeeded", "channel": DIFF, "data": {}}
    assert quiet_for(ws, 0.3)
    ws.close()


def test_heartbeat_and_errors(sim):
    ws = connect(f"{sim.urls['bitstamp_ws']}/")
    ws.send(json.dumps({"event": "bts:heartbeat"}))
    assert recv_json(ws) == {"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}}
    for bad in ("nonsense_ethbtc", "diff_order_book_", "", "DIFF_ORDER_BOOK_ETHBTC"):
        assert subscribe(ws, bad) == {"event": "bts:error", "channel": "",
                                      "data": {"code": None, "message": "Invalid channel provided."}}
    ws.close()


def test_unknown_pair_is_accepted_and_silent(sim):
    ws = connect(f"{sim.urls['bitstamp_ws']}/")
    assert subscribe(ws, "diff_order_book_nopenope")["event"] == "bts:subscription_succeeded"
    assert quiet_for(ws, 0.5)
    ws.close()


def test_order_book_channel_sends_top_100_snapshots(sim):
    ws = connect(f"{sim.urls['bitstamp_ws']}/")
    assert subscribe(ws, "order_book_ethbtc")["event"] == "bts:subscription_succeeded"
    frame = recv_json(ws)
    ws.close()
    assert frame["channel"] == "order_book_ethbtc"
    assert len(frame["data"]["bids"]) == len(frame["data"]["asks"]) == 100
    assert float(frame["data"]["bids"][0][0]) < float(frame["data"]["asks"][0][0])


def test_rest_snapshot_full_depth_with_spaces_and_404(sim):
    response = requests.get(f"{sim.urls['bitstamp_rest']}/api/v2/order_book/ethbtc/", timeout=5)
    assert response.status_code == 200
    assert response.text.startswith('{"timestamp": "') and '"bids": [["' in response.text
    assert '", "' in response.text
    body = response.json()
    assert len(body["bids"]) >= 300 and len(body["asks"]) >= 300
    assert body["timestamp"] == body["microtimestamp"][:-6]
    asks = [parse_decimal(p) for p, _ in body["asks"]]
    assert asks == sorted(asks)
    assert requests.get(f"{sim.urls['bitstamp_rest']}/api/v2/order_book/nopenope/", timeout=5).status_code == 404


def test_snapshot_microtimestamp_is_that_of_the_last_diff_sent(sim):
    ws = connect(f"{sim.urls['bitstamp_ws']}/")
    subscribe(ws, DIFF)
    seen = [recv_json(ws)["data"]["microtimestamp"]]
    snapshot = requests.get(f"{sim.urls['bitstamp_rest']}/api/v2/order_book/ethbtc/", timeout=5).json()
    while int(seen[-1]) <= int(snapshot["microtimestamp"]):
        seen.append(recv_json(ws)["data"]["microtimestamp"])
    ws.close()
    assert snapshot["microtimestamp"] in seen
