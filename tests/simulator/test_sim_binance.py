"""Binance wire protocol as a client sees it: streams, live control frames, errors, snapshots, pings."""

from __future__ import annotations

import json
import time

import requests
from simulator_support import (connect, next_event, quiet_for, raw_websocket, read_until_closed, recv_json,
                               recv_until)

STREAM = "ethbtc@depth@100ms"


def test_raw_stream_events_have_the_documented_shape_and_contiguous_ids(sim):
    ws = connect(f"{sim.urls['binance_ws']}/ws/{STREAM}")
    events = [recv_json(ws) for _ in range(40)]
    ws.close()
    for event in events:
        assert set(event) == {"e", "E", "s", "U", "u", "b", "a"}
        assert (event["e"], event["s"]) == ("depthUpdate", "ETHBTC")
        assert event["U"] <= event["u"]
        for price, amount in event["b"] + event["a"]:
            assert len(price.split(".")[1]) == 8 and len(amount.split(".")[1]) == 8
    assert all(b["U"] == a["u"] + 1 for a, b in zip(events, events[1:]))
    assert len({e["u"] - e["U"] for e in events}) > 1  # ids advance by a variable count


def test_combined_stream_wraps_events_with_the_stream_name(sim):
    ws = connect(f"{sim.urls['binance_ws']}/stream?streams={STREAM}/btcusdt@depth@100ms")
    frames = [recv_json(ws) for _ in range(5)]
    ws.close()
    assert all(set(f) == {"stream", "data"} and f["stream"] == STREAM for f in frames)
    assert all(f["data"]["e"] == "depthUpdate" for f in frames)


def test_live_subscribe_list_unsubscribe_flow(sim):
    ws = connect(f"{sim.urls['binance_ws']}/ws")
    assert quiet_for(ws, 0.3)
    ws.send(json.dumps({"method": "SUBSCRIBE", "params": [STREAM], "id": 1}))
    assert recv_json(ws) == {"result": None, "id": 1}
    assert recv_json(ws)["e"] == "depthUpdate"
    ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}))
    assert recv_until(ws, lambda m: "id" in m) == {"result": [STREAM], "id": 3}
    ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": [STREAM], "id": 312}))
    assert recv_until(ws, lambda m: "id" in m) == {"result": None, "id": 312}
    assert quiet_for(ws, 0.3)
    ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 4}))
    assert recv_json(ws) == {"result": [], "id": 4}
    ws.close()


def test_combined_property_on_a_bare_stream_connection(sim):
    ws = connect(f"{sim.urls['binance_ws']}/stream")
    ws.send(json.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 2}))
    assert recv_json(ws) == {"result": True, "id": 2}
    ws.send(json.dumps({"method": "SUBSCRIBE", "params": [STREAM], "id": 5}))
    assert recv_json(ws) == {"result": None, "id": 5}
    assert recv_json(ws)["stream"] == STREAM
    ws.send(json.dumps({"method": "SET_PROPERTY", "params": ["combined", False], "id": 6}))
    recv_until(ws, lambda m: m.get("id") == 6)
    assert "stream" not in recv_json(ws)
    ws.close()


def test_control_frame_errors(sim):
    ws = connect(f"{sim.urls['binance_ws']}/ws")
    ws.send("{not json")
    reply = recv_json(ws)
    assert reply["error"]["code"] == 3 and reply["error"]["msg"].startswith("Invalid JSON: ")
    ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethbtc@nonsense"], "id": 7}))
    assert recv_json(ws) == {"error": {"code": 2, "msg": "Invalid request: unknown variable"}, "id": 7}
    ws.send(json.dumps({"method": "FROB", "params": [], "id": 8}))
    reply = recv_json(ws)
    assert reply["id"] == 8 and reply["error"]["code"] == 2 and "unknown variant `FROB`" in reply["error"]["msg"]
    assert quiet_for(ws, 1.1)  # stay under 5 messages per second
    ws.send(json.dumps({"method": "SUBSCRIBE", "params": [STREAM], "id": -1}))
    assert recv_json(ws)["error"] == {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}
    ws.send(json.dumps({"method": "SET_PROPERTY", "params": ["colour", True], "id": 9}))
    assert recv_json(ws) == {"error": {"code": 0, "msg": "Unknown property"}, "id": 9}
    ws.close()


def test_unknown_symbol_stream_is_accepted_and_silent(sim):
    ws = connect(f"{sim.urls['binance_ws']}/ws/nosuchcoin@depth@100ms")
    assert quiet_for(ws, 0.5)
    ws.close()


def test_client_flooding_more_than_5_messages_per_second_is_disconnected(sim):
    ws = connect(f"{sim.urls['binance_ws']}/ws")
    for i in range(8):
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
    replies = []
    while (event := next_event(ws, 3))[0] == "text":
        replies.append(json.loads(event[1]))
    assert event == ("close", 1008)
    assert [r["id"] for r in replies] == [0, 1, 2, 3, 4]


def test_depth_1000ms_stream_coalesces_a_second_of_events(sim):
    fast = connect(f"{sim.urls['binance_ws']}/ws/{STREAM}")
    slow = connect(f"{sim.urls['binance_ws']}/ws/ethbtc@depth")
    first, second = recv_json(slow, 3), recv_json(slow, 3)
    fast.close()
    slow.close()
    assert second["U"] == first["u"] + 1
    assert second["u"] - second["U"] > 100  # ~200 events of >= 1 id each
    assert second["E"] - first["E"] >= 900


def test_snapshot_limits_and_error_bodies(sim):
    url = f"{sim.urls['binance_rest']}/api/v3/depth"
    default = requests.get(url, params={"symbol": "ETHBTC"}, timeout=5)
    assert default.status_code == 200
    body = default.json()
    assert set(body) == {"lastUpdateId", "bids", "asks"}
    assert len(body["bids"]) == len(body["asks"]) == 100
    assert int(default.headers["X-MBX-USED-WEIGHT-1M"]) >= 5
    bids = [float(p) for p, _ in body["bids"]]
    assert bids == sorted(bids, reverse=True)
    assert len(requests.get(url, params={"symbol": "ETHBTC", "limit": "7"}, timeout=5).json()["asks"]) == 7
    huge = requests.get(url, params={"symbol": "ETHBTC", "limit": "99999"}, timeout=5)
    assert huge.status_code == 200 and 300 <= len(huge.json()["bids"]) <= 310  # clamped to 5000: the whole book
    bad = requests.get(url, params={"symbol": "NOPE"}, timeout=5)
    assert (bad.status_code, bad.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
    missing = requests.get(url, timeout=5)
    assert missing.status_code == 400 and missing.json()["code"] == -1102
    assert requests.get(url, params={"symbol": "ETHBTC", "limit": "x"}, timeout=5).json()["code"] == -1100


def test_snapshot_matches_stream_position(sim):
    """The snapshot is the state at request time: its id is at or after the last event already received."""
    ws = connect(f"{sim.urls['binance_ws']}/ws/{STREAM}")
    first = recv_json(ws)
    snapshot = requests.get(f"{sim.urls['binance_rest']}/api/v3/depth", params={"symbol": "ETHBTC"},
                            timeout=5).json()
    ws.close()
    assert snapshot["lastUpdateId"] >= first["u"]


def test_weight_budget_429_with_retry_after(make_sim):
    process = make_sim("--binance-weight-limit", "60", "--rate", "5")
    url = f"{process.urls['binance_rest']}/api/v3/depth"
    weights = [requests.get(url, params={"symbol": "ETHBTC", "limit": "200"}, timeout=5) for _ in range(3)]
    assert [r.status_code for r in weights] == [200, 200, 429]
    assert [r.headers["X-MBX-USED-WEIGHT-1M"] for r in weights] == ["25", "50", "50"]
    refused = weights[2]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["code"] == -1003 and refused.json()["msg"].startswith("Too many requests")
    assert requests.get(url, params={"symbol": "ETHBTC", "limit": "5"}, timeout=5).status_code == 200  # weight 5 fits


def test_server_pings_keep_a_ponging_client_and_drop_a_silent_one(make_sim):
    sim = make_sim("--binance-ping-interval", "0.3", "--binance-pong-timeout", "0.8")
    good = connect(f"{sim.urls['binance_ws']}/ws")
    silent = raw_websocket(sim.urls["binance_ws"], "/ws")
    started = time.monotonic()
    while time.monotonic() - started < 2.0:
        assert next_event(good, 0.2)[0] == "timeout"  # websocket-client answers pings inside recv
    data, closed = read_until_closed(silent, 3.0)
    assert closed, "a client that never pongs must be dropped"
    assert data[:1] == b"\x89"  # it was pinged first
    good.ping(b"hi")
    good.settimeout(2)
    opcode, frame = good.recv_data_frame(control_frame=True)
    assert (opcode, frame.data) == (0xA, b"hi")  # the server answers client pings
    good.close()
