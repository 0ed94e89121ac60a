"""Which recorded frames a replay serves."""

from __future__ import annotations

import json

import pytest

from orderbook.simulator.config import DEFAULT_RECORDINGS
from orderbook.simulator.replay import RecordingError, load, resolve

pytestmark = pytest.mark.skipif(not DEFAULT_RECORDINGS.is_dir(), reason="recordings not present")


def test_binance_frames_start_with_the_one_straddling_the_snapshot():
    rec = load("2021-04a_BTCUSDT", "binance", DEFAULT_RECORDINGS)
    assert rec.symbol == "BTCUSDT"
    first = rec.frames[0][1]
    assert first["U"] <= rec.snapshot_id + 1 <= first["u"]
    prefix = DEFAULT_RECORDINGS / "binance" / "2021-04a_BTCUSDT"
    with open(f"{prefix}.depthUpdate.jsonl") as lines:
        all_events = [json.loads(line)["data"] for line in lines]
    kept = [e for e in all_events if e["u"] > rec.snapshot_id]
    assert [f for _, f in rec.frames] == kept and len(kept) < len(all_events)
    times = [ts for ts, _ in rec.frames]
    assert times == sorted(times)


def test_bitstamp_frames_after_the_snapshot_only():
    rec = load("2021-04a_btcusdc", "bitstamp", DEFAULT_RECORDINGS)
    assert rec.symbol == "btcusdc"
    assert all(int(frame["data"]["microtimestamp"]) > rec.snapshot_id for _, frame in rec.frames)
    assert rec.frames and rec.bids and rec.asks


def test_resolve_accepts_a_path_prefix_and_rejects_unknown_sets(tmp_path):
    prefix = DEFAULT_RECORDINGS / "binance" / "2021-04a_BTCUSDT"
    assert resolve(str(prefix), "binance", tmp_path) == prefix
    with pytest.raises(RecordingError):
        resolve("no_such_set", "binance", DEFAULT_RECORDINGS)
