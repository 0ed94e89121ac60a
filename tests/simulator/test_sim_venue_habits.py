"""Real venue habits, as a client sees them on the wire: Bitstamp's lagging REST book and junk rows, error answers
with surprising statuses, Binance's connection age cut, serverShutdown notice and incoming message limit, a change
lost silently, a sweep through the book."""

from __future__ import annotations

import json
import time

import pytest
import requests
from simulator_support import (connect, drain_until_end, next_event, quiet_for, recv_json, recv_until,
                               run_until_events)

from orderbook.prices import parse_decimal
from tests.support.waiting import wait_until

BINANCE_STREAM = "ethbtc@depth@100ms"
DIFF = "diff_order_book_ethbtc"


def diff_subscriber(urls: dict[str, str], exchange: str):
    """A connection receiving ``exchange``'s diffs of ETHBTC."""
    if exchange == "binance":
        return connect(f"{urls['binance_ws']}/ws/{BINANCE_STREAM}")
    return bitstamp_subscriber(urls)


def bitstamp_subscriber(urls: dict[str, str]):
    ws = connect(f"{urls['bitstamp_ws']}/")
    ws.send(json.dumps({"event": "bts:subscribe", "data": {"channel": DIFF}}))
    assert recv_json(ws)["event"] == "bts:subscription_succeeded"
    return ws


def bitstamp_snapshot(urls: dict[str, str]) -> dict:
    return requests.get(f"{urls['bitstamp_rest']}/api/v2/order_book/ethbtc/", timeout=5).json()


def binance_snapshot(urls: dict[str, str], limit: int = 5000) -> dict:
    return requests.get(f"{urls['binance_rest']}/api/v3/depth", params={"symbol": "ETHBTC", "limit": str(limit)},
                        timeout=5).json()


# -- Bitstamp: the REST book lags the stream -------------------------------------------------------------------


def test_bitstamp_rest_lag_serves_the_book_of_lag_seconds_ago(make_sim):
    process = make_sim("--paused", "--rate", "300", "--levels", "50", "--bitstamp-rest-lag", "1.0")
    control, urls = process.control, process.urls
    before = control.truth()["bitstamp"]
    run_until_events(control, 20)
    paused_at = time.monotonic()
    after = control.truth()["bitstamp"]
    assert after["bids"] != before["bids"] or after["asks"] != before["asks"]
    early = bitstamp_snapshot(urls)  # every change is younger than the lag: the book from before the run
    assert time.monotonic() - paused_at < 0.7, "too slow to observe the lag"
    assert (early["bids"], early["asks"], early["microtimestamp"]) == (before["bids"], before["asks"],
                                                                        before["microtimestamp"])
    late = wait_until(lambda: bitstamp_snapshot(urls), 5, "the lagging REST book to reach the paused book",
                      accept=lambda snapshot: snapshot["microtimestamp"] == after["microtimestamp"], interval=0.02)
    assert 0.6 < time.monotonic() - paused_at < 2.5
    assert (late["bids"], late["asks"]) == (after["bids"], after["asks"])
    assert late["timestamp"] == late["microtimestamp"][:-6]
    assert control.stats()["bitstamp"]["rest_lag"] == 1.0


def test_bitstamp_rest_lag_fault_switches_the_lag_on_and_off(make_sim):
    process = make_sim("--paused", "--rate", "300", "--levels", "50")
    control, urls = process.control, process.urls
    assert bitstamp_snapshot(urls)["microtimestamp"] == control.truth()["bitstamp"]["microtimestamp"]
    assert control.rest_lag(30.0)["lag"] == 30.0
    at_switch = control.truth()["bitstamp"]
    run_until_events(control, 20)
    now = control.truth()["bitstamp"]
    assert now["microtimestamp"] != at_switch["microtimestamp"]
    lagged = bitstamp_snapshot(urls)
    assert (lagged["bids"], lagged["microtimestamp"]) == (at_switch["bids"], at_switch["microtimestamp"])
    assert control.rest_lag(0)["lag"] == 0.0
    current = bitstamp_snapshot(urls)
    assert (current["bids"], current["asks"], current["microtimestamp"]) == (now["bids"], now["asks"],
                                                                             now["microtimestamp"])
    assert control.stats()["bitstamp"]["faults"]["rest_lag"] == 2


# -- rows a venue should not send, but does --------------------------------------------------------------------


def test_bitstamp_junk_rows_end_every_snapshot(make_sim):
    process = make_sim("--paused", "--levels", "20", "--bitstamp-junk-rows")
    body = bitstamp_snapshot(process.urls)
    assert body["bids"][-2:] == [["0.00000000", "1.00000000"], None]
    truth = process.control.truth()["bitstamp"]
    assert body["bids"][:-2] == truth["bids"] and body["asks"] == truth["asks"]
    assert all(parse_decimal(price) > 0 for price, _ in truth["bids"])


@pytest.mark.parametrize("exchange", ["binance", "bitstamp"])
def test_junk_rows_fault_marks_the_next_diffs_only(sim, exchange):
    if exchange == "binance":
        ws = connect(f"{sim.urls['binance_ws']}/ws/{BINANCE_STREAM}")
        recv_json(ws)
    else:
        ws = bitstamp_subscriber(sim.urls)
    before = sim.control.stats()[exchange]["junk_rows_sent"]
    assert sim.control.junk_rows(exchange, count=2)["pending"] == 2
    frames = [recv_json(ws) for _ in range(40)]
    ws.close()
    bids = [frame["b"] if exchange == "binance" else frame["data"]["bids"] for frame in frames]
    junk = [i for i, levels in enumerate(bids) if ["0.00000000", "1.00000000"] in levels]
    assert len(junk) == 2 and junk[1] == junk[0] + 1
    for i in junk:
        row = bids[i].index(["0.00000000", "1.00000000"])
        if exchange == "bitstamp":
            assert bids[i][row + 1:] == [None]  # the null row ends the bids
        else:
            assert row == len(bids[i]) - 1 and None not in bids[i]
        assert len(bids[i]) >= row + 1
    assert not any(None in levels for i, levels in enumerate(bids) if i not in junk)
    stats = sim.control.stats()[exchange]
    assert stats["junk_rows_sent"] - before == 2 and stats["junk_rows_pending"] == 0
    truth = sim.control.truth()[exchange]
    assert all(parse_decimal(price) > 0 for price, _ in truth["bids"])


# -- error answers ---------------------------------------------------------------------------------------------


def test_binance_403_is_the_firewall_s_html_and_bitstamp_errors_come_with_200(sim):
    sim.control.rest("binance", 403)
    blocked = requests.get(f"{sim.urls['binance_rest']}/api/v3/depth", params={"symbol": "ETHBTC"}, timeout=5)
    assert blocked.status_code == 403
    assert blocked.headers["Content-Type"].startswith("text/html") and "<H1>403 ERROR</H1>" in blocked.text
    with pytest.raises(ValueError):
        blocked.json()
    sim.control.rest("bitstamp", "200_error", count=2)
    url = f"{sim.urls['bitstamp_rest']}/api/v2/order_book/ethbtc/"
    answers = [requests.get(url, timeout=5) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == answers[1].json() == {"status": "error", "reason": "Rate limit exceeded",
                                                     "code": "400.002"}
    assert "bids" in answers[2].json()


# -- Binance: connection age, serverShutdown -------------------------------------------------------------------


def test_binance_connection_is_cut_cleanly_at_its_maximum_age(make_sim):
    process = make_sim("--rate", "100", "--binance-max-connection-age", "0.8")
    ws = connect(f"{process.urls['binance_ws']}/ws/{BINANCE_STREAM}")
    opened = time.monotonic()
    kind, code, texts = drain_until_end(ws, 5)
    assert (kind, code) == ("close", 1000)
    assert 0.6 < time.monotonic() - opened < 2.0
    assert texts and all(json.loads(text)["e"] == "depthUpdate" for text in texts)  # no notice by default
    wait_until(lambda: process.control.stats()["binance"]["age_disconnects"], 5, "the age cut counted",
               accept=lambda cuts: cuts == 1, interval=0.02)


@pytest.mark.parametrize("path", [f"/ws/{BINANCE_STREAM}", f"/stream?streams={BINANCE_STREAM}"])
def test_binance_shutdown_notice_comes_before_the_age_cut(make_sim, path):
    process = make_sim("--rate", "100", "--binance-max-connection-age", "1.2", "--binance-shutdown-notice", "0.6")
    ws = connect(f"{process.urls['binance_ws']}{path}")
    opened = time.monotonic()
    notice = recv_until(ws, lambda m: "serverShutdown" in json.dumps(m))
    noticed = time.monotonic()
    kind, code, after = drain_until_end(ws, 5)
    closed = time.monotonic()
    assert 0.4 < noticed - opened < 1.0 and 0.4 < closed - noticed < 1.2
    assert (kind, code) == ("close", 1000)
    if path.startswith("/ws/"):
        assert set(notice) == {"e", "E"} and notice["e"] == "serverShutdown"
    else:
        assert notice["stream"] == "!serverShutdown" and set(notice["data"]) == {"e", "E"}
    assert len(after) >= 5  # diffs kept flowing on the old connection until it was closed


def test_server_shutdown_fault_announces_then_closes_after_close_after(sim):
    raw = connect(f"{sim.urls['binance_ws']}/ws/{BINANCE_STREAM}")
    combined = connect(f"{sim.urls['binance_ws']}/ws")
    combined.send(json.dumps({"method": "SET_PROPERTY", "params": ["combined", True], "id": 1}))
    combined.send(json.dumps({"method": "SUBSCRIBE", "params": [BINANCE_STREAM], "id": 2}))
    recv_until(combined, lambda m: m.get("id") == 2)
    recv_json(raw)
    asked = time.monotonic()
    assert sim.control.server_shutdown(close_after=0.6)["connections"] >= 2
    raw_notice = recv_until(raw, lambda m: m.get("e") == "serverShutdown")
    wrapped_notice = recv_until(combined, lambda m: m.get("stream") == "!serverShutdown")
    assert set(raw_notice) == {"e", "E"} and wrapped_notice["data"]["e"] == "serverShutdown"
    kind, code, after = drain_until_end(raw, 5)
    assert (kind, code) == ("close", 1001)
    assert 0.45 < time.monotonic() - asked < 2.0
    assert after and all(json.loads(text)["e"] == "depthUpdate" for text in after)
    assert drain_until_end(combined, 5)[:2] == ("close", 1001)


# -- Binance: incoming messages, PING and PONG frames included -------------------------------------------------


def test_binance_six_pings_within_a_second_are_a_flood(sim):
    ws = connect(f"{sim.urls['binance_ws']}/ws")
    before = sim.control.stats()["binance"]["flood_disconnects"]
    for _ in range(6):
        ws.ping(b"x")
    pongs = 0
    while (event := next_event_with_pongs(ws, 3))[0] == "pong":
        pongs += 1
    assert event == ("close", 1008) and pongs == 5
    assert sim.control.stats()["binance"]["flood_disconnects"] == before + 1


def test_binance_pongs_and_messages_share_the_limit(make_sim):
    process = make_sim("--binance-max-client-messages", "3")
    ws = connect(f"{process.urls['binance_ws']}/ws")
    ws.pong(b"unsolicited")
    ws.pong(b"unsolicited")
    ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
    assert recv_json(ws) == {"result": [], "id": 1}
    ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))  # the 4th message within a second
    assert next_event(ws, 3) == ("close", 1008)
    assert process.control.stats()["binance"]["max_client_messages"] == 3


def test_binance_four_pings_a_second_for_three_seconds_are_fine(sim):
    ws = connect(f"{sim.urls['binance_ws']}/ws")
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 3.0:
        ws.ping(b"ok")
        sent += 1
        assert next_event_with_pongs(ws, 1.0)[0] == "pong"
        time.sleep(max(0.0, started + sent * 0.25 + 0.005 - time.monotonic()))
    assert sent >= 12
    ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 9}))
    assert recv_until(ws, lambda m: m.get("id") == 9) == {"result": [], "id": 9}
    ws.close()


def next_event_with_pongs(ws, timeout: float) -> tuple[str, object]:
    """Like next_event, but a PONG frame is an event of its own."""
    from websocket import ABNF, WebSocketConnectionClosedException, WebSocketTimeoutException

    ws.settimeout(timeout)
    try:
        opcode, frame = ws.recv_data_frame(control_frame=True)
    except WebSocketTimeoutException:
        return ("timeout", None)
    except (ConnectionError, WebSocketConnectionClosedException, OSError) as exc:
        return ("reset", exc)
    if opcode == ABNF.OPCODE_PONG:
        return ("pong", frame.data)
    if opcode == ABNF.OPCODE_CLOSE:
        return ("close", int.from_bytes(frame.data[:2], "big"))
    return ("text", frame.data.decode())


# -- a change lost silently; a sweep ---------------------------------------------------------------------------


@pytest.mark.parametrize("exchange", ["binance", "bitstamp"])
def test_lose_change_changes_the_truth_and_sends_nothing(make_sim, exchange):
    process = make_sim("--paused", "--rate", "300", "--levels", "40")
    control, urls = process.control, process.urls
    ws = diff_subscriber(urls, exchange)
    before = control.truth()[exchange]
    answer = control.lose_change(exchange, side="ask", index=2)
    price, amount = before["asks"][2]
    assert (answer["price"], answer["side"]) == (price, "ask")
    assert parse_decimal(answer["amount"]) == 2 * parse_decimal(amount) + parse_decimal("0.00000001")
    after = control.truth()[exchange]
    assert after["asks"][2] == [price, answer["amount"]]
    assert after["bids"] == before["bids"] and after["asks"][:2] == before["asks"][:2]
    assert quiet_for(ws, 0.3)  # nothing sent
    if exchange == "binance":
        assert after["last_update_id"] == before["last_update_id"]
        snapshot = binance_snapshot(urls)
        assert snapshot["lastUpdateId"] == before["last_update_id"] and snapshot["asks"][2] == after["asks"][2]
        control.resume()
        assert recv_json(ws)["U"] == before["last_update_id"] + 1  # the stream shows no gap
    else:
        assert after["microtimestamp"] == before["microtimestamp"]
        snapshot = bitstamp_snapshot(urls)
        assert snapshot["microtimestamp"] == before["microtimestamp"] and snapshot["asks"][2] == after["asks"][2]
    ws.close()
    assert control.stats()[exchange]["faults"]["lose_change"] == 1


@pytest.mark.parametrize("exchange", ["binance", "bitstamp"])
def test_sweep_is_one_diff_taking_the_book_out_of_a_limited_snapshot(make_sim, exchange):
    process = make_sim("--paused", "--rate", "2000", "--levels", "60")
    control, urls = process.control, process.urls
    ws = diff_subscriber(urls, exchange)
    before = control.truth()[exchange]
    limited = before["bids"][:10]  # what a client with a 10-level snapshot knows
    answer = control.sweep(exchange, side="bid", levels=20)
    assert (answer["removed"], answer["from"], answer["to"]) == (20, before["bids"][0][0], before["bids"][19][0])
    frame = recv_json(ws)
    assert quiet_for(ws, 0.2)  # exactly one diff
    if exchange == "binance":
        assert frame["U"] == before["last_update_id"] + 1 and frame["a"] == []
        removed = frame["b"]
    else:
        assert int(frame["data"]["microtimestamp"]) > int(before["microtimestamp"]) and frame["data"]["asks"] == []
        removed = frame["data"]["bids"]
    assert [price for price, _ in removed] == [price for price, _ in before["bids"][:20]]
    assert all(parse_decimal(amount) == 0 for _, amount in removed)
    after = control.truth()[exchange]
    assert after["bids"][0] == before["bids"][20] == [answer["best"], before["bids"][20][1]]
    assert parse_decimal(after["bids"][0][0]) < parse_decimal(limited[-1][0])  # out of the snapshot's range
    control.resume()  # the model carries on from the swept book: the depth refills, never crossed
    try:
        wait_until(lambda: control.truth()[exchange], 10, f"{exchange}'s bids refilled to 60 levels",
                   accept=lambda book: len(book["bids"]) >= 60, interval=0.02)
    finally:
        control.pause()
    truth = control.truth()[exchange]
    ws.close()
    assert parse_decimal(truth["bids"][0][0]) < parse_decimal(truth["asks"][0][0])
    assert 60 <= len(truth["bids"]) <= 70 and 60 <= len(truth["asks"]) <= 70
