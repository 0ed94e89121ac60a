"""The real recorded exchange traffic in ``recordings/`` (in the repository), as typed data sets.

A checkout without it cannot run the recorded-frame tests, and must say so loudly rather than skip them (a skipped
test reads like a passing one in a summary line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from orderbook.simulator.config import DEFAULT_RECORDINGS

RECORDINGS_DIR = DEFAULT_RECORDINGS
EXCHANGES = ("binance", "bitstamp")


@dataclass(frozen=True)
class DataSet:
    """One capture: stream frames (raw text, as received) with their receive times, and the snapshot taken then."""

    exchange: str
    name: str
    """``<tag>_<SYMBOL or pair>``, e.g. ``2021-04a_BTCUSDT``; unique within an exchange."""
    symbol: str
    """Upper case, as the product's configuration spells it (``BTCUSDT``, ``BCHEUR``)."""
    frames: tuple[str, ...]
    recv_ts: tuple[float, ...]
    snapshot_body: bytes
    snapshot_recv: float
    snapshot_id: int
    """Binance ``lastUpdateId`` or Bitstamp ``microtimestamp`` of the snapshot, from the manifest."""
    snapshot_limit: int | None
    """The ``limit`` the Binance snapshot was asked with (levels a side at most); None: Bitstamp's whole book."""

    @property
    def id(self) -> str:
        return f"{self.exchange}/{self.name}"

    @property
    def received_before_snapshot(self) -> int:
        """How many frames a live client held before the snapshot's body arrived (the rest came after it)."""
        return sum(1 for ts in self.recv_ts if ts < self.snapshot_recv)

    def events(self) -> list[dict[str, Any]]:
        """Each frame's event object, decoded here independently of the product's parser."""
        decoded = [json.loads(frame) for frame in self.frames]
        return [frame["data"] for frame in decoded]

    def snapshot(self) -> dict[str, Any]:
        return json.loads(self.snapshot_body)


def recordings_dir() -> Path:
    if not (RECORDINGS_DIR / "manifest.json").is_file():
        pytest.fail(
            f"the recorded exchange frames are missing: expected {RECORDINGS_DIR}/manifest.json "
            "(the repository's recordings/ folder); these tests cannot run without it",
            pytrace=False,
        )
    return RECORDINGS_DIR


def _lines(path: Path) -> tuple[str, ...]:
    return tuple(line for line in path.read_text(encoding="utf-8").splitlines() if line)


def _limit(url: str) -> int | None:
    values = parse_qs(urlsplit(url).query).get("limit")
    return int(values[0]) if values else None


@cache
def data_sets(exchange: str) -> tuple[DataSet, ...]:
    """Every data set of ``exchange`` in the manifest, sorted by name. Fails (never skips) when there are none."""
    if exchange not in EXCHANGES:
        raise ValueError(f"no recordings for {exchange!r}")
    root = recordings_dir()
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    found = []
    for entry in manifest:
        if entry["exchange"] != exchange:
            continue
        folder = root / exchange
        name, _, _ = entry["file"].partition(".")
        frames = _lines(folder / entry["file"])
        recv_ts = tuple(float(line) for line in _lines(folder / f"{name}.recv_ts.txt"))
        if len(frames) != len(recv_ts) or len(frames) != entry["count"]:
            pytest.fail(f"{exchange}/{name}: frame, receive-time and manifest counts disagree", pytrace=False)
        snapshot_id = entry["lastUpdateId"] if exchange == "binance" else int(entry["snapshot_microtimestamp"])
        found.append(
            DataSet(
                exchange=exchange,
                name=name,
                symbol=(entry.get("symbol") or entry["pair"]).upper(),
                frames=frames,
                recv_ts=recv_ts,
                snapshot_body=(folder / entry["snapshot_file"]).read_bytes(),
                snapshot_recv=entry["snapshot_recv"],
                snapshot_id=snapshot_id,
                snapshot_limit=_limit(entry.get("snapshot_url", "")),
            )
        )
    if not found:
        pytest.fail(f"no {exchange} data sets in {root}/manifest.json", pytrace=False)
    return tuple(sorted(found, key=lambda data_set: data_set.name))


@cache
def control_events() -> tuple[str, ...]:
    """Every recorded Bitstamp control frame (``bts:subscription_succeeded``)."""
    paths = sorted((recordings_dir() / "bitstamp").glob("*_control_events.jsonl"))
    if not paths:
        pytest.fail(f"no Bitstamp control events in {RECORDINGS_DIR}/bitstamp", pytrace=False)
    return tuple(line for path in paths for line in _lines(path))


def params(exchange: str) -> list[Any]:
    """``pytest.param`` per data set of ``exchange``, with readable ids, for ``parametrize``."""
    return [pytest.param(data_set, id=data_set.id) for data_set in data_sets(exchange)]
