"""Recorded data sets: a venue's snapshot plus the frames received around it, from ``recordings/`` (the captures
kept in the repository) or from a directory ``bin/run-server --record`` wrote (docs/recording.md).

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
from orderbook.recording.format import FILE_SUFFIX, FormatError, Kind, Record
from orderbook.recording.reader import read_directory

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


_SNAPSHOT_PATH = {"binance": "/api/v3/depth?symbol={symbol}&", "bitstamp": "/api/v2/order_book/{pair}/"}


def load_recorded(directory: Path, exchange: str) -> Recording:
    """The default symbol (the recording's first) of ``exchange`` from a ``--record`` directory: its first snapshot
    answered, and the frames received for it after that the snapshot does not cover, each once (a frame read on two
    connections at a hand-over, once)."""
    problems: list[str] = []
    try:
        records = list(read_directory(directory, problems.append))
    except FormatError as error:
        raise RecordingError(str(error)) from None
    start = next((record.meta for record in records if record.kind is Kind.START), None)
    if start is None or not start.get("symbols"):
        raise RecordingError(f"{directory}: no start record naming the symbols")
    symbol = str(start["symbols"][0])
    path = _SNAPSHOT_PATH[exchange].format(symbol=symbol, pair=symbol.lower())
    snapshot = next((record for record in records if record.kind is Kind.HTTP and record.meta.get("venue") == exchange
                     and record.meta.get("status") == 200 and path in record.meta.get("url", "")), None)
    if snapshot is None:
        raise RecordingError(f"{directory}: no {exchange} snapshot of {symbol} answered")
    body = json.loads(snapshot.body)
    connections = {record.connection for record in records
                   if record.kind is Kind.OPENED and record.meta.get("venue") == exchange}
    frames = _recorded_frames(records, connections, exchange, symbol, body)
    snapshot_id = int(body["lastUpdateId"] if exchange == "binance" else body["microtimestamp"])
    name = symbol if exchange == "binance" else symbol.lower()
    return Recording(exchange, name, snapshot_id, _levels(body["bids"]), _levels(body["asks"]), frames)


def _recorded_frames(records: list[Record], connections: set[int], exchange: str, symbol: str,
                     snapshot: dict) -> list[tuple[float, dict]]:
    """Binance: the event objects of ``symbol``'s diffs past ``lastUpdateId``; Bitstamp: the whole frames of its
    diff channel past the snapshot's microtimestamp; each id once, in order."""
    if exchange == "binance":
        last = int(snapshot["lastUpdateId"])
    else:
        last = int(snapshot["microtimestamp"])
        channel = f"diff_order_book_{symbol.lower()}"
    frames: list[tuple[float, dict]] = []
    for record in records:
        if record.kind is not Kind.FRAME or record.connection not in connections:
            continue
        try:
            frame = json.loads(record.body)
        except ValueError:
            continue  # a frame the venue garbled: the service skipped it too
        if not isinstance(frame, dict):
            continue
        if exchange == "binance":
            event = frame.get("data", frame)
            if not isinstance(event, dict) or event.get("e") != "depthUpdate" or event.get("s") != symbol:
                continue
            key, payload = int(event["u"]), event
        else:
            data = frame.get("data")
            if frame.get("channel") != channel or frame.get("event") != "data" or not isinstance(data, dict):
                continue
            key, payload = int(data["microtimestamp"]), frame
        if key > last:
            frames.append((record.time, payload))
            last = key
    return frames


def load(spec: str, exchange: str, recordings: Path) -> Recording:
    """A data set of ``recordings/`` (by name or path prefix), or a ``--record`` directory."""
    if Path(spec).is_dir() and any(path.name.endswith(FILE_SUFFIX) for path in Path(spec).iterdir()):
        return load_recorded(Path(spec), exchange)
    prefix = resolve(spec, exchange, recordings)
    return load_binance(prefix) if exchange == "binance" else load_bitstamp(prefix)
