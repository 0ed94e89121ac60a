"""THE faithfulness test: clients written only from the documented procedures (docs/protocols.md) sync both books
against a fast simulator whose snapshots arrive late, and end up equal to the truth, checkpoint after checkpoint.

``SIM_SYNC_SECONDS`` sets how long the traffic runs (default 120: minutes of traffic, as the issue asks),
``SIM_SYNC_RATE`` the events per second per exchange (default 2000). The traffic is counted, not timed: each venue sends
``SIM_SYNC_SECONDS`` times ``SIM_SYNC_RATE`` events (240,000), which a busy machine takes longer to send, rather than
sending fewer.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable
from itertools import chain

import pytest
import requests
import websocket

from orderbook.book import VenueBook
from orderbook.prices import parse_decimal
from orderbook.simulator.process import SimulatorControl, SimulatorProcess
from tests.support.tiers import one_at_a_time
from tests.support.waiting import wait_until

SYNC_SECONDS = float(os.environ.get("SIM_SYNC_SECONDS", "120"))
RATE = int(os.environ.get("SIM_SYNC_RATE", "2000"))
EVENTS = int(SYNC_SECONDS * RATE)
"""Events each venue sends, in all."""
SNAPSHOT_DELAY = 0.5
CHECKPOINTS = 3


def parse(levels: list[list[str]]) -> list[tuple[int, int]]:
    return [(parse_decimal(price), parse_decimal(amount)) for price, amount in levels]


class FeedClient(threading.Thread):
    """Reads one WebSocket into a queue (the buffer), while the sync thread fetches the snapshot."""

    def __init__(self, url: str, subscribe: dict | None = None) -> None:
        super().__init__(daemon=True)
        self.ws = websocket.create_connection(url, timeout=10)
        if subscribe is not None:
            self.ws.send(json.dumps(subscribe))
        self.messages: queue.Queue[dict | None] = queue.Queue()

    def run(self) -> None:
        try:
            while text := self.ws.recv():  # "" once the connection is closed
                self.messages.put(json.loads(text))
        except (websocket.WebSocketException, OSError):
            pass
        self.messages.put(None)

    def close(self) -> None:
        self.ws.close()


class BinanceSync(threading.Thread):
    """Binance's documented procedure: buffer, snapshot (retry while too old), drop, apply, gap => restart."""

    def __init__(self, urls: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.book = VenueBook()
        self.book_id = 0
        self.buffered_at_sync = 0
        self.restarts = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self._sync_once():
                self.restarts += 1
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self.error = exc

    def _sync_once(self) -> bool:
        feed = self.feed = FeedClient(f"{self.urls['binance_ws']}/ws/ethbtc@depth@100ms")
        feed.start()
        first = feed.messages.get(timeout=10)
        assert first is not None, "the feed closed before its first event"
        while True:
            snapshot = requests.get(f"{self.urls['binance_rest']}/api/v3/depth",
                                    params={"symbol": "ETHBTC", "limit": "5000"}, timeout=10).json()
            if snapshot["lastUpdateId"] >= first["U"]:
                break
        last_id = snapshot["lastUpdateId"]
        self.book.load(parse(snapshot["bids"]), parse(snapshot["asks"]))
        self.book_id = last_id
        self.buffered_at_sync = feed.messages.qsize() + 1
        kept_first = False
        for event in chain([first], iter(feed.messages.get, None)):
            if not kept_first:
                if event["u"] <= last_id:
                    continue
                assert event["U"] <= last_id + 1 <= event["u"], "first kept event must straddle the snapshot"
                kept_first = True
            if event["u"] < self.book_id:
                continue
            if event["U"] > self.book_id + 1:
                feed.close()
                return False
            self.book.apply(parse(event["b"]), parse(event["a"]))
            self.book_id = event["u"]
        return True  # the test closed the connection


class BitstampSync(threading.Thread):
    """Bitstamp's: subscribe and buffer, snapshot, drop diffs not newer than it, apply in order."""

    def __init__(self, urls: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.book = VenueBook()
        self.last_us = 0
        self.buffered_at_sync = 0
        self.out_of_order = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._sync()
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self.error = exc

    def _sync(self) -> None:
        feed = FeedClient(f"{self.urls['bitstamp_ws']}/",
                          {"event": "bts:subscribe", "data": {"channel": "diff_order_book_ethbtc"}})
        self.feed = feed
        feed.start()
        subscribed = feed.messages.get(timeout=10)
        assert subscribed is not None and subscribed["event"] == "bts:subscription_succeeded"
        snapshot = requests.get(f"{self.urls['bitstamp_rest']}/api/v2/order_book/ethbtc/", timeout=10).json()
        self.book.load(parse(snapshot["bids"]), parse(snapshot["asks"]))
        self.last_us = int(snapshot["microtimestamp"])
        self.buffered_at_sync = feed.messages.qsize()
        while (frame := feed.messages.get()) is not None:
            us = int(frame["data"]["microtimestamp"])
            if us <= self.last_us:
                continue  # already in the snapshot (or out of order, which the simulator never does unasked)
            self.book.apply(parse(frame["data"]["bids"]), parse(frame["data"]["asks"]))
            self.last_us = us


def sent_at_least(control: SimulatorControl, events: int) -> Callable[[], object]:
    def sent() -> bool:
        stats = control.stats()
        return all(stats[name]["events"] >= events for name in ("binance", "bitstamp"))

    return sent


@one_at_a_time
@pytest.mark.usefixtures("starts_processes")
@pytest.mark.timeout(60 + 3 * SYNC_SECONDS)  # the traffic may take up to three times its nominal time here
def test_documented_clients_stay_exactly_in_sync_at_high_rate():
    args = ("--rate", str(RATE), "--snapshot-delay", str(SNAPSHOT_DELAY), "--seed", "9")
    with SimulatorProcess(*args) as sim:
        binance, bitstamp = BinanceSync(sim.urls), BitstampSync(sim.urls)
        binance.start()
        bitstamp.start()
        for checkpoint in range(CHECKPOINTS):
            events = EVENTS * (checkpoint + 1) // CHECKPOINTS
            wait_until(sent_at_least(sim.control, events), 3 * SYNC_SECONDS / CHECKPOINTS,
                       f"{events} events sent by each venue (checkpoint {checkpoint})", interval=0.2)
            sim.control.pause()
            truth = sim.control.truth()
            wait_until(lambda truth=truth: binance.book_id == truth["binance"]["last_update_id"] or binance.error, 10,
                       f"the Binance client at the truth's update id (checkpoint {checkpoint})", interval=0.02)
            wait_until(lambda truth=truth: str(bitstamp.last_us) == truth["bitstamp"]["microtimestamp"]
                       or bitstamp.error, 10,
                       f"the Bitstamp client at the truth's microtimestamp (checkpoint {checkpoint})", interval=0.02)
            assert binance.error is None and bitstamp.error is None, (binance.error, bitstamp.error)
            assert binance.book.bids() == parse(truth["binance"]["bids"]), checkpoint
            assert binance.book.asks() == parse(truth["binance"]["asks"]), checkpoint
            assert bitstamp.book.bids() == parse(truth["bitstamp"]["bids"]), checkpoint
            assert bitstamp.book.asks() == parse(truth["bitstamp"]["asks"]), checkpoint
            if checkpoint < CHECKPOINTS - 1:
                sim.control.resume()
        # Closed with the market paused: websocket-client's close() reads (and drops) frames until the close reply,
        # from this thread, while the client's own thread reads too; with the market running it took a few
        # diffs, and the Binance client rightly saw a gap and restarted, after the last checkpoint.
        stats = sim.control.stats()
        binance.feed.close()
        bitstamp.feed.close()
    # The snapshot really arrived late while diffs kept coming, and every event was sent.
    assert binance.buffered_at_sync > RATE * SNAPSHOT_DELAY / 4
    assert bitstamp.buffered_at_sync > RATE * SNAPSHOT_DELAY / 4
    assert binance.restarts == 0
    for name in ("binance", "bitstamp"):
        assert stats[name]["events"] >= EVENTS, stats[name]
