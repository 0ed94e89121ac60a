"""Recorded data sets (``recordings/``): a venue's snapshot plus the frames received around it.

Loading is pure: which frames a replay serves is decided here, once. Frames entirely covered by the snapshot are
skipped (Binance: ``u <= lastUpdateId``; Bitstamp: ``microtimestamp <= snapshot.microtimestamp``); the Binance
frame that straddles the snapshot is kept, as a live client would receive it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from orderbook.book import PriceLevel
from orderbook.prices import parse_decimal

_FRAME_SUFFIX = {"binance": ".depthUpdate.jsonl", "bitstamp": ".diff_order_book.jsonl"}


class RecordingError(ValueError):
    """A data set that cannot be found or does not hold together."""


@dataclass(frozen=True, slots=True)
class Recording:
    exchange: str
    symbol: str
    """Binance: the upper-case symbol; Bitstamp: the pair."""
    snapshot_id: int
    """Binance: ``lastUpdateId``; Bitstamp: ``microtimestamp``."""
    bids: list[PriceLevel]
    asks: list[PriceLevel]
    frames: list[tuple[float, dict]]
    """(receive time, payload) to serve in order: the Binance event object, or the whole Bitstamp frame."""


def resolve(spec: str, exchange: str, recordings: Path) -> Path:
    """A data set name (``2021-04a_BTCUSDT``) under ``recordings/<exchange>/``, or a path prefix, to a prefix."""
    for prefix in (Path(spec), recordings / exchange / spec):
        if Path(f"{prefix}{_FRAME_SUFFIX[exchange]}").is_file():
            return prefix
    raise RecordingError(f"{exchange}: no data set {spec!r} (looked in {recordings / exchange})")


def _levels(raw: list[list[str]]) -> list[PriceLevel]:
    return [(parse_decimal(price), parse_decimal(amount)) for price, amount in raw]


def _lines(prefix: Path, exchange: str) -> list[tuple[float, dict]]:
    frames = [json.loads(line) for line in Path(f"{prefix}{_FRAME_SUFFIX[exchange]}").read_text().splitlines()
              if line.strip()]
    times = [float(line) for line in Path(f"{prefix}.recv_ts.txt").read_text().split()]
    if len(times) != len(frames):
        raise RecordingError(f"{prefix}: {len(frames)} frames but {len(times)} receive times")
    return list(zip(times, frames))


def load_binance(prefix: Path) -> Recording:
    snapshot = json.loads(Path(f"{prefix}.snapshot.json").read_text())
    last_id = int(snapshot["lastUpdateId"])
    frames = [(ts, frame["data"]) for ts, frame in _lines(prefix, "binance") if frame["data"]["u"] > last_id]
    symbol = frames[0][1]["s"] if frames else prefix.name.rsplit("_", 1)[-1].upper()
    return Recording("binance", symbol, last_id, _levels(snapshot["bids"]), _levels(snapshot["asks"]), frames)


def load_bitstamp(prefix: Path) -> Recording:
    snapshot = json.loads(Path(f"{prefix}.snapshot.json").read_text())
    snapshot_us = int(snapshot["microtimestamp"])
    frames = [(ts, frame) for ts, frame in _lines(prefix, "bitstamp")
              if int(frame["data"]["microtimestamp"]) > snapshot_us]
    pair = prefix.name.rsplit("_", 1)[-1].lower()
    if frames:
        pair = frames[0][1]["channel"].removeprefix("diff_order_book_")
    return Recording("bitstamp", pair, snapshot_us, _levels(snapshot["bids"]), _levels(snapshot["asks"]), frames)


def load(spec: str, exchange: str, recordings: Path) -> Recording:
    prefix = resolve(spec, exchange, recordings)
    return load_binance(prefix) if exchange == "binance" else load_bitstamp(prefix)
