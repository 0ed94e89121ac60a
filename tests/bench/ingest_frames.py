"""The frames the ingest scenario feeds: real recorded ones, and simulated ones written as the venues write them.

Each source is a list of :class:`Replay` items: a snapshot of a set depth to preload (untimed), then frames that
all follow it, so every timed frame is a diff the server would apply. The other exchange's slot of the
consolidated book holds a static copy of the same snapshot, so both books share a price grid and the merged top
changes as often as it would with two live venues quoting the same market.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import cycle, islice

from orderbook.book import PriceLevel
from orderbook.exchanges.base import Venue
from orderbook.exchanges.binance import BinanceVenue
from orderbook.exchanges.bitstamp import BitstampVenue
from orderbook.exchanges.messages import BookDiff, BookSnapshot
from orderbook.simulator.exchange import format_levels, levels_json
from orderbook.simulator.market import ModelParams, VenueModel

SYMBOL = "ETHBTC"
EXCHANGES = ("binance", "bitstamp")


@dataclass(frozen=True)
class Replay:
    """Frames of one or both exchanges that follow their snapshots, in arrival order."""

    name: str
    snapshots: dict[str, BookSnapshot]
    """Per exchange: what its sync is loaded with; an exchange without frames is served as a static book."""
    frames: list[tuple[str, bytes]]
    """(exchange, raw frame) in the order the server would read them."""


def protocol(exchange: str) -> Venue:
    if exchange == "binance":
        return BinanceVenue("ws://127.0.0.1:1", "http://127.0.0.1:1", snapshot_limit=5000)
    return BitstampVenue("ws://127.0.0.1:1", "http://127.0.0.1:1")


def _padded(levels: tuple[PriceLevel, ...], depth: int, direction: int) -> tuple[PriceLevel, ...]:
    """Exactly ``depth`` levels: cut, or extended past the worst level (``direction`` -1 for bids, +1 for asks)."""
    if len(levels) >= depth or not levels:
        return levels[:depth]
    prices = [price for price, _ in levels[:50]]
    gaps = [abs(a - b) for a, b in zip(prices, prices[1:]) if a != b]
    step = min(gaps) if gaps else max(1, prices[0] // 10_000)
    worst = levels[-1][0]
    missing = depth - len(levels)
    if direction < 0:
        step = min(step, max(1, (worst - 1) // (missing + 1)))
    amounts = cycle(amount for _, amount in levels)
    extra = tuple((worst + direction * step * i, amount) for i, amount in zip(range(1, missing + 1), amounts))
    return levels + extra


def _at_depth(snapshot: BookSnapshot, depth: int) -> BookSnapshot:
    return BookSnapshot(snapshot.last_id, _padded(snapshot.bids, depth, -1), _padded(snapshot.asks, depth, +1))


def recorded(depth: int) -> list[Replay]:
    """Every recorded data set of both exchanges, its snapshot cut or extended to ``depth`` levels per side."""
    from tests.recordings import data_sets  # here: it reads the test data in recordings/, and only this source does

    replays = []
    for exchange in EXCHANGES:
        for data_set in data_sets(exchange):
            proto = protocol(exchange)
            snapshot = _at_depth(proto.parse_snapshot(data_set.snapshot_body), depth)
            frames = []
            for text in data_set.frames:
                message = proto.parse_message(text)
                if type(message) is BookDiff and message.final_id > snapshot.last_id:
                    frames.append((exchange, text.encode()))
            other = EXCHANGES[1 - EXCHANGES.index(exchange)]
            replays.append(Replay(data_set.id, {exchange: snapshot, other: snapshot}, frames))
    return replays


def recorded_symbol(replay: Replay) -> str:
    """The symbol the parser must expect for a recorded replay (``exchange/tag_SYMBOL``)."""
    return replay.name.rsplit("_", 1)[1].upper()


def simulated(depth: int, events_per_exchange: int, seed: str = "bench", venues: tuple[str, ...] = EXCHANGES,
              combined: bool = False) -> Replay:
    """The simulator's market model at ``depth`` levels per side: frames of ``venues`` (both by default),
    alternating frame by frame; a venue without frames is a static book. ``combined``: Binance's frames wrapped as
    a combined stream sends them (``{"stream": ..., "data": ...}``), as the server subscribes."""
    start_ms = int(time.time() * 1000)
    snapshots: dict[str, BookSnapshot] = {}
    per_exchange: dict[str, list[bytes]] = {}
    for exchange in EXCHANGES:
        model = VenueModel(f"{seed}:{exchange}", ModelParams.with_levels(depth))
        bids, asks = model.levels()
        last_id = 1_000_000_000 if exchange == "binance" else start_ms * 1000
        snapshots[exchange] = BookSnapshot(last_id, tuple(bids), tuple(asks))
        if exchange not in venues:
            continue
        frames = per_exchange[exchange] = []
        for index in range(1, events_per_exchange + 1):
            change = model.step()
            bids_json, asks_json = levels_json(format_levels(change.bids)), levels_json(format_levels(change.asks))
            if exchange == "binance":
                text = (f'{{"e":"depthUpdate","E":{start_ms + index // 10},"s":"{SYMBOL}","U":{last_id + index},'
                        f'"u":{last_id + index},"b":{bids_json},"a":{asks_json}}}')
                if combined:
                    text = f'{{"stream":"{SYMBOL.lower()}@depth@100ms","data":{text}}}'
            else:
                us = last_id + index * 100
                text = (f'{{"data":{{"timestamp":"{us // 1_000_000}","microtimestamp":"{us}","bids":{bids_json},'
                        f'"asks":{asks_json}}},"channel":"diff_order_book_{SYMBOL.lower()}","event":"data"}}')
            frames.append(text.encode())
    interleaved = [(exchange, frame) for pair in zip(*per_exchange.values())
                   for exchange, frame in zip(per_exchange, pair)]
    return Replay(f"simulated/{depth}", snapshots, list(islice(interleaved, None)))
