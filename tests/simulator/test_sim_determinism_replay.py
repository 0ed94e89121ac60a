"""A seeded run is reproducible; a replay serves exactly the recording's frames; truth follows the replay."""

from __future__ import annotations

import json
import time

import pytest
import requests
from simulator_support import connect, levels, quiet_for, recv_json

from orderbook.book import VenueBook
from orderbook.prices import parse_decimal
from orderbook.simulator.config import DEFAULT_RECORDINGS
from orderbook.simulator.replay import load

pytestmark = pytest.mark.usefixtures("starts_processes")  # each test starts its own simulator

needs_recordings = pytest.mark.skipif(not DEFAULT_RECORDINGS.is_dir(), reason="recordings not present")


def first_frames(seed: str, count: int) -> tuple[list[dict], list[dict], dict]:
    from orderbook.simulator.process import SimulatorProcess

    with SimulatorProcess("--paused", "--seed", seed, "--rate", "3000") as process:
        binance = connect(f"{process.urls['binance_ws']}/ws/ethbtc@depth@100ms")
        bitstamp = connect(f"{process.urls['bitstamp_ws']}/")
        bitstamp.send(json.dumps({"event": "bts:subscribe", "data": {"channel": "diff_order_book_ethbtc"}}))
        recv_json(bitstamp)
        snapshot = requests.get(f"{process.urls['binance_rest']}/api/v3/depth",
                                params={"symbol": "ETHBTC", "limit": "50"}, timeout=5).json()
        process.control.resume()
        binance_events = [recv_json(binance) for _ in range(count)]
        bitstamp_frames = [recv_json(bitstamp) for _ in range(count)]
        binance.close()
        bitstamp.close()
    for event in binance_events:
        del event["E"]
    for frame in bitstamp_frames:
        del frame["data"]["timestamp"], frame["data"]["microtimestamp"]
    return binance_events, bitstamp_frames, snapshot


def test_same_seed_gives_the_same_frames_apart_from_timestamps():
    first = first_frames("42", 300)
    assert first == first_frames("42", 300)
    assert first[0] != first_frames("43", 20)[0][:20]


@needs_recordings
def test_binance_replay_serves_the_recorded_events_and_truth_follows():
    from orderbook.simulator.process import SimulatorProcess

    recording = load("2021-04a_BTCUSDT", "binance", DEFAULT_RECORDINGS)
    with SimulatorProcess("--paused", "--replay-binance", "2021-04a_BTCUSDT", "--replay-speed", "max") as process:
        url = f"{process.urls['binance_rest']}/api/v3/depth"
        snapshot = requests.get(url, params={"symbol": "BTCUSDT", "limit": "5000"}, timeout=5).json()
        assert snapshot["lastUpdateId"] == recording.snapshot_id
        raw = connect(f"{process.urls['binance_ws']}/ws/btcusdt@depth@100ms")
        combined = connect(f"{process.urls['binance_ws']}/stream?streams=btcusdt@depth@100ms")
        process.control.resume()
        served = [recv_json(raw) for _ in recording.frames]
        wrapped = [recv_json(combined) for _ in recording.frames]
        assert quiet_for(raw, 0.5)  # the recording has ended: the venue stays idle
        truth = process.control.truth()
    assert served == [event for _, event in recording.frames]
    assert wrapped == [{"stream": "btcusdt@depth@100ms", "data": event} for _, event in recording.frames]
    book = VenueBook()
    book.load(levels(snapshot["bids"]).items(), levels(snapshot["asks"]).items())
    for event in served:
        book.apply(levels(event["b"]).items(), levels(event["a"]).items())
    assert levels(truth["binance"]["bids"]) == dict(book.bids())
    assert levels(truth["binance"]["asks"]) == dict(book.asks())
    assert truth["binance"]["last_update_id"] == served[-1]["u"]


@needs_recordings
def test_bitstamp_replay_at_recorded_pace():
    from orderbook.simulator.process import SimulatorProcess

    recording = load("2021-04a_btcusdc", "bitstamp", DEFAULT_RECORDINGS)
    gaps = [b - a for (a, _), (b, _) in zip(recording.frames, recording.frames[1:])]
    with SimulatorProcess("--paused", "--replay-bitstamp", "2021-04a_btcusdc") as process:
        ws = connect(f"{process.urls['bitstamp_ws']}/")
        ws.send(json.dumps({"event": "bts:subscribe", "data": {"channel": "diff_order_book_btcusdc"}}))
        recv_json(ws)
        count = min(6, len(recording.frames))
        process.control.resume()
        started = time.monotonic()
        served = [recv_json(ws, 30) for _ in range(count)]
        elapsed = time.monotonic() - started
        snapshot = requests.get(f"{process.urls['bitstamp_rest']}/api/v2/order_book/btcusdc/", timeout=5).json()
    assert served == [frame for _, frame in recording.frames[:count]]
    recorded = sum(gaps[: count - 1])
    assert recorded - 0.2 <= elapsed <= recorded + 1.5
    assert int(snapshot["microtimestamp"]) >= int(served[-1]["data"]["microtimestamp"])
    assert parse_decimal(snapshot["bids"][0][0]) > 0
