"""Several symbols on each venue (``--symbol ETHBTC,BTCUSDT,ETHUSDT``): each an independent market with its own
ids or microtimestamps, on shared connections, with its own snapshot, truth and faults."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import requests
import websocket
from simulator_support import connect, levels, quiet_for, recv_json, run_until_events

from orderbook.book import VenueBook
from orderbook.simulator.config import ConfigError, SimulatorConfig, from_args, parser
from orderbook.simulator.process import SimulatorError, SimulatorProcess
from orderbook.simulator.simulator import Simulator
from tests.support.beats import same_time_share

SYMBOLS = ("ETHBTC", "BTCUSDT", "ETHUSDT")
EVENTS_EACH = 20
"""Events each of the hundred symbols' markets sends to the combined client: two seconds' worth at 10 a second."""


@pytest.fixture(scope="module")
def multi(starts_processes):
    with SimulatorProcess("--paused", "--symbol", ",".join(SYMBOLS), "--rate", "300",
                          "--binance-weight-limit", "100000") as process:
        yield process


def read_all(ws, quiet: float = 0.3) -> list[dict]:
    """Every message until none comes for ``quiet`` seconds."""
    messages = []
    while True:
        ws.settimeout(quiet)
        try:
            messages.append(json.loads(ws.recv()))
        except Exception:  # noqa: BLE001 - the timeout ends the read
            return messages


def read_count(ws, count: int, timeout: float = 10.0) -> list[dict]:
    """The next ``count`` messages, however they are paced: after a client has left its connection unread for a
    while (its TCP receive window closed), the rest can come only after a pause of about a second (seen: 0.9 s,
    in one run out of five or so; TCP reopening the window), which a "read until quiet" takes for the end."""
    deadline = time.monotonic() + timeout
    messages: list[dict] = []
    while len(messages) < count:
        ws.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            messages.append(json.loads(ws.recv()))
        except websocket.WebSocketTimeoutException:
            raise AssertionError(f"{len(messages)} of {count} messages within {timeout} s") from None
    return messages


def book_from(snapshot: dict) -> VenueBook:
    book = VenueBook()
    book.load(levels(snapshot["bids"]).items(), levels(snapshot["asks"]).items())
    return book


def assert_book_is_truth(book: VenueBook, truth: dict) -> None:
    assert dict(book.bids()) == levels(truth["bids"])
    assert dict(book.asks()) == levels(truth["asks"])


# -- configuration -----------------------------------------------------------------------------------------------


def test_one_symbol_is_the_config_of_before_and_a_list_adds_markets():
    assert from_args(parser().parse_args([])) == SimulatorConfig()
    config = from_args(parser().parse_args(["--symbol", "ETHBTC,BTCUSDT"]))
    assert (config.symbol, config.extra_symbols, config.symbols) == ("ETHBTC", ("BTCUSDT",), ("ETHBTC", "BTCUSDT"))
    with pytest.raises(ConfigError, match="twice"):
        SimulatorConfig(extra_symbols=("ETHBTC",))
    with pytest.raises(ConfigError, match="upper-case"):
        SimulatorConfig(extra_symbols=("btcusdt",))
    with pytest.raises(ConfigError, match="replay"):
        SimulatorConfig(extra_symbols=("BTCUSDT",), replay_binance="2021-04a_BTCUSDT")


@pytest.mark.usefixtures("starts_processes")
def test_a_replay_with_several_symbols_is_refused_at_start():
    with pytest.raises(SimulatorError, match="code 2"):
        SimulatorProcess("--symbol", "ETHBTC,BTCUSDT", "--replay-bitstamp", "2021-04a_btcusdc").start()


GOLDEN_SEED_42 = "5e4c3a3d95686fad2c72369cc1cf73d2564c2c0b3fec679a7271e5295a2efa30"
"""The default symbol's initial books, first 500 changes and Binance ids per venue for seed 42, as the simulator
made them before it served several symbols."""


@pytest.mark.parametrize("extra", [(), ("BTCUSDT", "ETHUSDT")])
def test_the_default_symbol_s_market_is_the_one_of_before_whatever_else_is_served(extra):
    simulator = Simulator(SimulatorConfig(seed=42, paused=True, extra_symbols=extra))
    digest = hashlib.sha256()
    for name in ("binance", "bitstamp"):
        feed, exchange = simulator.feeds[name], simulator.exchange(name)
        digest.update(repr(exchange.truth.bids()).encode() + repr(exchange.truth.asks()).encode())
        for _ in range(500):
            change = feed.model.step()  # type: ignore[union-attr]
            exchange.publish(change)
            digest.update(repr((change, getattr(exchange, "last_update_id", None))).encode())
    assert digest.hexdigest() == GOLDEN_SEED_42


def test_adding_a_symbol_changes_no_other_symbol_s_market():
    def market(extra: tuple[str, ...], symbol: str) -> tuple:
        simulator = Simulator(SimulatorConfig(seed=7, paused=True, extra_symbols=extra))
        binance, bitstamp = simulator.markets[symbol]
        return (binance.last_update_id, binance.model.levels(), bitstamp.model.levels(),  # type: ignore[union-attr]
                [binance.model.step() for _ in range(200)])  # type: ignore[union-attr]

    assert market(("BTCUSDT",), "BTCUSDT") == market(("ETHUSDT", "BTCUSDT"), "BTCUSDT")
    ethbtc, btcusdt = market(("BTCUSDT",), "ETHBTC"), market(("BTCUSDT",), "BTCUSDT")
    assert ethbtc[0] != btcusdt[0] and ethbtc[1] != btcusdt[1]  # own ids, own book (own price centre, too)


# -- Binance -----------------------------------------------------------------------------------------------------


def test_binance_combined_and_subscribe_deliver_each_symbol_s_diffs_onto_its_own_snapshot(multi):
    combined = connect(f"{multi.urls['binance_ws']}/stream?streams=ethbtc@depth@100ms/btcusdt@depth@100ms")
    raw = connect(f"{multi.urls['binance_ws']}/ws")
    raw.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@depth@100ms", "btcusdt@depth@100ms"],
                         "id": 1}))
    assert recv_json(raw) == {"result": None, "id": 1}
    raw.send(json.dumps({"method": "SET_PROPERTY", "params": ["combined", True], "id": 2}))
    assert recv_json(raw) == {"result": None, "id": 2}
    url = f"{multi.urls['binance_rest']}/api/v3/depth"
    books = {symbol: book_from(requests.get(url, params={"symbol": symbol, "limit": "5000"}, timeout=5).json())
             for symbol in SYMBOLS}
    ids = {symbol: requests.get(url, params={"symbol": symbol, "limit": "5"}, timeout=5).json()["lastUpdateId"]
           for symbol in SYMBOLS}
    assert len(set(ids.values())) == 3
    run_until_events(multi.control, 60)
    received = {"combined": read_all(combined), "subscribed": read_all(raw)}
    combined.close()
    raw.close()
    assert {m["stream"] for m in received["combined"]} == {"ethbtc@depth@100ms", "btcusdt@depth@100ms"}
    assert {m["stream"] for m in received["subscribed"]} == {"ethusdt@depth@100ms", "btcusdt@depth@100ms"}
    by_stream = received["combined"] + [m for m in received["subscribed"] if m["stream"] == "ethusdt@depth@100ms"]
    btcusdt_twice = [m["data"] for m in received["subscribed"] if m["stream"] == "btcusdt@depth@100ms"]
    assert btcusdt_twice == [m["data"] for m in received["combined"] if m["stream"] == "btcusdt@depth@100ms"]
    for symbol in SYMBOLS:
        events = [m["data"] for m in by_stream if m["stream"] == f"{symbol.lower()}@depth@100ms"]
        assert len(events) > 50 and all(event["s"] == symbol for event in events)
        last = ids[symbol]
        for event in events:
            assert event["U"] == last + 1, f"{symbol}: not contiguous"
            last = event["u"]
            books[symbol].apply(levels(event["b"]).items(), levels(event["a"]).items())
        truth = multi.control.truth(symbol=symbol.lower() if symbol == "ETHUSDT" else symbol)  # any case
        assert truth["symbol"] == symbol and truth["binance"]["last_update_id"] == last
        assert_book_is_truth(books[symbol], truth["binance"])
    assert multi.control.truth()["symbol"] == "ETHBTC"  # the default


def test_binance_unknown_symbols_rest_error_and_silent_stream(multi):
    bad = requests.get(f"{multi.urls['binance_rest']}/api/v3/depth", params={"symbol": "XRPUSDT"}, timeout=5)
    assert (bad.status_code, bad.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
    ws = connect(f"{multi.urls['binance_ws']}/ws/xrpusdt@depth@100ms")
    multi.control.resume()
    try:
        assert quiet_for(ws, 0.3)
    finally:
        multi.control.pause()
        ws.close()
    with pytest.raises(SimulatorError, match="symbol must be one of"):
        multi.control.truth(symbol="XRPUSDT")


def test_binance_a_connection_listens_to_at_most_1024_streams(multi):
    ws = connect(f"{multi.urls['binance_ws']}/ws")
    names = [f"s{i:04d}usdt@depth@100ms" for i in range(1023)]
    ws.send(json.dumps({"method": "SUBSCRIBE", "params": names, "id": 1}))
    assert recv_json(ws) == {"result": None, "id": 1}
    ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethbtc@depth", "btcusdt@depth"], "id": 2}))
    refused = recv_json(ws)
    assert refused["id"] == 2 and refused["error"]["code"] == 2 and "1024" in refused["error"]["msg"]
    ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethbtc@depth", names[0]], "id": 3}))
    assert recv_json(ws) == {"result": None, "id": 3}  # a stream already listened to does not count twice
    time.sleep(1.0)  # Binance's 5 messages a second
    ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 4}))
    assert len(recv_json(ws)["result"]) == 1024
    ws.close()


# -- Bitstamp ----------------------------------------------------------------------------------------------------


def test_bitstamp_several_channels_on_one_connection_each_with_its_own_microtimestamps(multi):
    ws = connect(f"{multi.urls['bitstamp_ws']}/")
    for symbol in SYMBOLS:
        channel = f"diff_order_book_{symbol.lower()}"
        ws.send(json.dumps({"event": "bts:subscribe", "data": {"channel": channel}}))
        assert recv_json(ws) == {"event": "bts:subscription_succeeded", "channel": channel, "data": {}}
    snapshots = {symbol: requests.get(f"{multi.urls['bitstamp_rest']}/api/v2/order_book/{symbol.lower()}/",
                                      timeout=5).json() for symbol in SYMBOLS}
    assert requests.get(f"{multi.urls['bitstamp_rest']}/api/v2/order_book/xrpusd/", timeout=5).status_code == 404
    run_until_events(multi.control, 60)
    frames = read_all(ws)
    ws.close()
    for symbol in SYMBOLS:
        data = [f["data"] for f in frames if f["channel"] == f"diff_order_book_{symbol.lower()}"]
        assert len(data) > 50
        book = book_from(snapshots[symbol])
        stamp = int(snapshots[symbol]["microtimestamp"])
        for diff in data:
            assert int(diff["microtimestamp"]) > stamp
            stamp = int(diff["microtimestamp"])
            book.apply(levels(diff["bids"]).items(), levels(diff["asks"]).items())
        truth = multi.control.truth(symbol=symbol)["bitstamp"]
        assert int(truth["microtimestamp"]) == stamp
        assert_book_is_truth(book, truth)


# -- faults and stats --------------------------------------------------------------------------------------------


def test_a_fault_on_one_symbol_leaves_the_others_untouched(multi):
    streams = "/".join(f"{symbol.lower()}@depth@100ms" for symbol in SYMBOLS)
    combined = connect(f"{multi.urls['binance_ws']}/stream?streams={streams}")
    before = multi.control.stats()["binance"]["markets"]
    assert multi.control.gap(events=3, symbol="BTCUSDT") == {"fault": "gap", "exchange": "binance",
                                                               "symbol": "BTCUSDT"}
    ethusdt = multi.control.truth(symbol="ETHUSDT")["bitstamp"]
    lost = multi.control.lose_change("bitstamp", "ask", 0, symbol="ETHUSDT")
    with pytest.raises(SimulatorError, match="takes no symbol"):
        multi.control.fault("drop", exchange="binance", symbol="BTCUSDT")
    run_until_events(multi.control, 20)
    messages = read_all(combined)
    combined.close()
    for symbol in SYMBOLS:
        events = [m["data"] for m in messages if m["stream"] == f"{symbol.lower()}@depth@100ms"]
        last, gaps = before[symbol]["last_update_id"], 0
        for event in events:
            gaps += event["U"] != last + 1
            last = event["u"]
        assert len(events) > 10 and gaps == (1 if symbol == "BTCUSDT" else 0), symbol
    after = multi.control.stats()["binance"]["markets"]
    assert after["BTCUSDT"]["events_hidden"] - before["BTCUSDT"].get("events_hidden", 0) == 3
    assert after["ETHBTC"].get("events_hidden", 0) == before["ETHBTC"].get("events_hidden", 0)
    assert after["BTCUSDT"]["faults"]["gap"] == 1 and "gap" not in after["ETHBTC"]["faults"]
    assert lost["side"] == "ask" and ethusdt["asks"][0][0] == lost["price"]
    assert multi.control.stats()["bitstamp"]["markets"]["ETHUSDT"]["faults"] == {"lose_change": 1}


def test_stats_keep_the_default_symbol_on_top_and_list_every_symbol(multi):
    stats = multi.control.stats()
    assert stats["symbols"] == list(SYMBOLS)
    binance = stats["binance"]
    assert binance["symbol"] == "ETHBTC"
    assert binance["last_update_id"] == binance["markets"]["ETHBTC"]["last_update_id"]
    assert binance["events"] == binance["markets"]["ETHBTC"]["events"]
    assert "connections" in binance and "connections" not in binance["markets"]["BTCUSDT"]
    assert stats["bitstamp"]["pair"] == "ethbtc" and stats["bitstamp"]["markets"]["BTCUSDT"]["pair"] == "btcusdt"
    crossed = multi.control.cross(symbol="BTCUSDT")
    assert crossed["symbol"] == "BTCUSDT" and crossed["spread"].startswith("-")
    assert multi.control.truth(1, symbol="BTCUSDT")["merged"]["spread"] == crossed["spread"]


# -- load --------------------------------------------------------------------------------------------------------


def test_a_hundred_symbols_at_ten_events_a_second_each_reach_one_combined_client(make_sim):
    """Every event each of the hundred markets sent reaches the client, in order: counted, not a rate (whether the
    machine keeps up with 1,000 events a second is bin/bench's to measure)."""
    symbols = [f"S{i:03d}USDT" for i in range(100)]
    process = make_sim("--paused", "--symbol", ",".join(symbols), "--rate", "10")
    streams = "/".join(f"{symbol.lower()}@depth@100ms" for symbol in symbols)
    ws = connect(f"{process.urls['binance_ws']}/stream?streams={streams}")
    first = {symbol: market["last_update_id"]
             for symbol, market in process.control.stats()["binance"]["markets"].items()}
    run_until_events(process.control, EVENTS_EACH, timeout=60)  # two seconds' worth, however long they take here
    sent = {symbol: market["events"] for symbol, market in process.control.stats()["binance"]["markets"].items()}
    # Every event sent (paused: no more will come), then nothing more: not "until quiet for 0.5 s", which two
    # seconds of frames queued while the client did not read sometimes are (read_count).
    messages = read_count(ws, sum(sent.values()))
    messages += read_all(ws, 0.5)
    ws.close()
    assert min(sent.values()) >= EVENTS_EACH  # every market ran
    assert len(messages) == sum(sent.values())  # and the client got every event
    for symbol in symbols:
        events = [m["data"] for m in messages if m["stream"] == f"{symbol.lower()}@depth@100ms"]
        assert len(events) == sent[symbol]
        last = first[symbol]
        for event in events:
            assert event["U"] == last + 1 and event["s"] == symbol
            last = event["u"]


def test_binance_s_symbols_send_together_on_its_100ms_beat_stamped_alike_the_default_last(make_sim):
    """As the recordings show it (docs/protocols.md, "When frames come"; tests/test_recorded_timing.py measures them
    the same way): whenever two symbols' frames are within 50 ms, they carry the same event time; at 10 events a
    second each symbol sends once a beat, and the default symbol (the one probes mark) comes last of each."""
    symbols = [f"S{i:03d}USDT" for i in range(20)]
    process = make_sim("--paused", "--symbol", ",".join(symbols), "--rate", "10")
    streams = "/".join(f"{symbol.lower()}@depth@100ms" for symbol in symbols)
    ws = connect(f"{process.urls['binance_ws']}/stream?streams={streams}")
    run_until_events(process.control, 10, timeout=60)
    sent = sum(market["events"] for market in process.control.stats()["binance"]["markets"].values())
    events = [message["data"] for message in read_count(ws, sent)]
    ws.close()
    near, share = same_time_share({symbol: [event["E"] for event in events if event["s"] == symbol]
                                   for symbol in symbols})
    assert near >= 100 and share == 1.0, (near, share)
    beats: dict[int, list[str]] = {}
    for event in events:
        beats.setdefault(event["E"], []).append(event["s"])
    assert len(beats) >= 10
    for names in beats.values():
        assert len(names) == len(set(names)), names  # once a beat each
        assert names[-1] == symbols[0] or symbols[0] not in names, names
