"""What ``bin/replay`` reads of a recording (:mod:`orderbook.replay.timeline`): each venue's diffs in their recorded
batches, each once across a hand-over, tagged with their symbol; the venue's ends of a connection; the snapshot
answers the service must ask for, counted from ``--from``; and the answer a REST request gets at a moment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard

from orderbook.recording.format import FILE_SUFFIX, Kind, encode_block, encode_frames, encode_record, file_header
from orderbook.replay.timeline import Asked, Batch, Drop, TimelineError, answer_at, diff_of, load_timeline

T0 = 1_796_306_587_000_000_000
MS = 1_000_000
DEPTH_URL = "http://venue/api/v3/depth?symbol={}&limit=100"


def _binance(symbol: str, last: int) -> bytes:
    event = {"e": "depthUpdate", "s": symbol, "U": last, "u": last, "b": [], "a": []}
    return json.dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": event}).encode()


def _bitstamp(pair: str, micros: int) -> bytes:
    return json.dumps({"data": {"microtimestamp": str(micros), "bids": [], "asks": []},
                       "channel": f"diff_order_book_{pair}", "event": "data"}).encode()


def _recording(directory: Path) -> Path:
    """Binance ETHBTC and BTCUSDT on connection 1, handed over to 2 (diff 3 read on both); a snapshot of ETHBTC
    asked twice; Bitstamp ETHBTC on 3, which the venue drops."""
    raw = bytearray()
    encode_record(raw, Kind.START, T0, 0, {"version": 1, "symbols": ["ETHBTC", "BTCUSDT"]}, b"")
    encode_record(raw, Kind.OPENED, T0 + 1 * MS, 1, {"venue": "binance", "url": "ws://venue/stream"}, b"")
    encode_record(raw, Kind.OPENED, T0 + 1 * MS, 3, {"venue": "bitstamp", "url": "ws://venue/"}, b"")
    encode_record(raw, Kind.HTTP, T0 + 5 * MS, 0, {"venue": "binance", "url": DEPTH_URL.format("ETHBTC"),
                                                   "status": 200, "sent_ns": T0}, b'{"lastUpdateId": 1}')
    encode_frames(raw, 1, [(T0 + 10 * MS, _binance("ETHBTC", 2)), (T0 + 11 * MS, _binance("BTCUSDT", 7)),
                           (T0 + 12 * MS, b'{"result":null,"id":1}')])
    encode_frames(raw, 3, [(T0 + 15 * MS, _bitstamp("ethbtc", 100))])
    encode_record(raw, Kind.CLOSED, T0 + 16 * MS, 3, {"reason": "disconnect", "detail": "reset"}, b"")
    encode_frames(raw, 1, [(T0 + 20 * MS, _binance("ETHBTC", 3))])
    encode_record(raw, Kind.OPENED, T0 + 21 * MS, 2, {"venue": "binance", "url": "ws://venue/stream"}, b"")
    encode_frames(raw, 2, [(T0 + 22 * MS, _binance("ETHBTC", 3)), (T0 + 23 * MS, _binance("ETHBTC", 4))])
    encode_record(raw, Kind.CLOSED, T0 + 24 * MS, 1, {"reason": "closed", "detail": "hand-over"}, b"")
    encode_record(raw, Kind.HTTP, T0 + 30 * MS, 0, {"venue": "binance", "url": DEPTH_URL.format("ETHBTC"),
                                                    "status": 200, "sent_ns": T0}, b'{"lastUpdateId": 9}')
    encode_frames(raw, 2, [(T0 + 40 * MS, _binance("ETHBTC", 10))])
    directory.mkdir()
    path = directory / f"{T0:020d}{FILE_SUFFIX}"
    path.write_bytes(file_header() + encode_block(zstandard.ZstdCompressor(), raw, 1))
    return directory


def _events(directory: Path, **window: int) -> list[tuple]:
    timeline = load_timeline(directory, None, window.get("from_ns"), window.get("to_ns"), lambda line: None)
    shown: list[tuple] = []
    for event in timeline.events:
        if isinstance(event, Batch):
            shown.append(("batch", event.venue, [(symbol, diff_of(event.venue, body)) for symbol, body in
                                                 event.frames]))
        elif isinstance(event, Drop):
            shown.append(("drop", event.venue))
        else:
            assert isinstance(event, Asked)
            shown.append(("asked", event.venue, event.request[1], event.count))
    return shown


def test_the_diffs_in_their_batches_each_once_the_venues_drops_and_the_snapshots_asked(tmp_path: Path) -> None:
    assert _events(_recording(tmp_path / "r")) == [
        ("asked", "binance", "limit=100&symbol=ETHBTC", 1),
        ("batch", "binance", [("ETHBTC", ("ETHBTC", 2)), ("BTCUSDT", ("BTCUSDT", 7))]),
        ("batch", "bitstamp", [("ETHBTC", ("ETHBTC", 100))]),
        ("drop", "bitstamp"),  # the venue's doing; the hand-over's end (closed) is not played
        ("batch", "binance", [("ETHBTC", ("ETHBTC", 3))]),
        ("batch", "binance", [("ETHBTC", ("ETHBTC", 4))]),  # 3, read again on the successor, once
        ("asked", "binance", "limit=100&symbol=ETHBTC", 2),
        ("batch", "binance", [("ETHBTC", ("ETHBTC", 10))]),
    ]


def test_a_window_and_the_snapshots_asked_counted_from_its_start(tmp_path: Path) -> None:
    assert _events(_recording(tmp_path / "r"), from_ns=T0 + 18 * MS, to_ns=T0 + 35 * MS) == [
        ("batch", "binance", [("ETHBTC", ("ETHBTC", 3))]),
        ("batch", "binance", [("ETHBTC", ("ETHBTC", 4))]),
        ("asked", "binance", "limit=100&symbol=ETHBTC", 1),
    ]


def test_a_request_gets_the_latest_answer_recorded_at_that_moment_else_the_first(tmp_path: Path) -> None:
    answers = load_timeline(_recording(tmp_path / "r"), None, None, None, lambda line: None).answers["binance"]
    query = {"symbol": "ETHBTC", "limit": "100"}

    def body(at_ms: int, asked: dict[str, str]) -> bytes | None:
        answer = answer_at(answers, "/api/v3/depth", asked, T0 + at_ms * MS)
        return None if answer is None else answer.body

    assert body(0, query) == body(29, query) == b'{"lastUpdateId": 1}'
    assert body(30, query) == b'{"lastUpdateId": 9}'
    assert body(30, {"symbol": "ETHBTC", "limit": "1000"}) == b'{"lastUpdateId": 9}'  # no such query: the symbol's
    assert body(30, {"symbol": "BTCUSDT"}) is None


def test_a_symbol_not_recorded_or_a_window_without_frames_is_one_line(tmp_path: Path) -> None:
    directory = _recording(tmp_path / "r")
    with pytest.raises(TimelineError, match=r"^--symbol ETHUSDT: not recorded \(the recording follows ETHBTC, "):
        load_timeline(directory, ["ETHUSDT"], None, None, lambda line: None)
    with pytest.raises(TimelineError, match="no frames of ETHBTC, BTCUSDT recorded between --from and --to$"):
        load_timeline(directory, None, T0 + 41 * MS, None, lambda line: None)


def test_the_summaries_published_after_each_event_until_the_service_began_to_stop(tmp_path: Path) -> None:
    """What a lockstep replay waits for: per event, the replayed symbols' summaries recorded after it and before the
    next event; none of what the service published once it began to stop (``STOPPING``)."""
    raw = bytearray()
    encode_record(raw, Kind.START, T0, 0, {"version": 2, "symbols": ["ETHBTC", "BTCUSDT"]}, b"")
    encode_record(raw, Kind.OPENED, T0 + 1 * MS, 1, {"venue": "binance", "url": "ws://venue/stream"}, b"")
    encode_frames(raw, 1, [(T0 + 10 * MS, _binance("ETHBTC", 2))])
    encode_record(raw, Kind.HTTP, T0 + 11 * MS, 0, {"venue": "binance", "url": DEPTH_URL.format("ETHBTC"),
                                                    "status": 200, "sent_ns": T0}, b'{"lastUpdateId": 1}')
    for symbol in ("ETHBTC", "BTCUSDT", "ETHBTC"):
        encode_record(raw, Kind.SUMMARY, T0 + 12 * MS, 0, {"symbol": symbol}, b"summary")
    encode_frames(raw, 1, [(T0 + 20 * MS, _binance("ETHBTC", 3)), (T0 + 20 * MS, _binance("BTCUSDT", 8))])
    encode_record(raw, Kind.SUMMARY, T0 + 21 * MS, 0, {"symbol": "ETHBTC"}, b"summary")
    encode_record(raw, Kind.STOPPING, T0 + 22 * MS, 0, None, b"")
    encode_record(raw, Kind.SUMMARY, T0 + 23 * MS, 0, {"symbol": "ETHBTC"}, b"the stop's")
    encode_record(raw, Kind.CLOSED, T0 + 24 * MS, 1, {"reason": "closed", "detail": "by the service"}, b"")
    directory = tmp_path / "r"
    directory.mkdir()
    (directory / f"{T0:020d}{FILE_SUFFIX}").write_bytes(file_header() + encode_block(zstandard.ZstdCompressor(),
                                                                                     raw, 1))
    timeline = load_timeline(directory, None, None, None, lambda line: None)
    assert [type(event).__name__ for event in timeline.events] == ["Batch", "Asked", "Batch"]
    assert timeline.published == [0, 3, 1]
    assert timeline.asks("binance") == {("/api/v3/depth", "limit=100&symbol=ETHBTC"): 1}
    assert timeline.asks("bitstamp") == {}
    # BTCUSDT alone: its one batch; its one summary came before it, before any event replayed
    assert load_timeline(directory, ["BTCUSDT"], None, None, lambda line: None).published == [0]


def test_a_snapshot_answer_is_played_where_the_recorded_service_was_done_with_it(tmp_path: Path) -> None:
    """Version 3 says when the service was done with each snapshot answer (``TAKEN``): what it read while it parsed
    and loaded the answer (here Binance BTCUSDT's batch, and the ETHBTC diff it buffered) is played before the
    answer, and what it published once done goes with the answer. An answer it was never done with (it stopped
    first) comes last."""
    url = DEPTH_URL.format("ETHBTC")
    raw = bytearray()
    encode_record(raw, Kind.START, T0, 0, {"version": 3, "symbols": ["ETHBTC", "BTCUSDT"]}, b"")
    encode_record(raw, Kind.OPENED, T0 + 1 * MS, 1, {"venue": "binance", "url": "ws://venue/stream"}, b"")
    encode_record(raw, Kind.HTTP, T0 + 10 * MS, 0, {"venue": "binance", "url": url, "status": 200, "sent_ns": T0},
                  b'{"lastUpdateId": 1}')
    encode_frames(raw, 1, [(T0 + 11 * MS, _binance("BTCUSDT", 7)), (T0 + 11 * MS, _binance("ETHBTC", 2))])
    encode_record(raw, Kind.SUMMARY, T0 + 12 * MS, 0, {"symbol": "BTCUSDT"}, b"summary")
    encode_record(raw, Kind.HTTP, T0 + 13 * MS, 0, {"venue": "binance", "url": DEPTH_URL.format("BTCUSDT"),
                                                    "status": 200, "sent_ns": T0}, b'{"lastUpdateId": 5}')
    encode_record(raw, Kind.SUMMARY, T0 + 14 * MS, 0, {"symbol": "ETHBTC"}, b"summary")
    encode_record(raw, Kind.TAKEN, T0 + 15 * MS, 0, {"venue": "binance", "url": url}, b"")
    encode_record(raw, Kind.TAKEN, T0 + 16 * MS, 0, {"venue": "binance", "url": url}, b"")  # none waiting: not played
    encode_frames(raw, 1, [(T0 + 20 * MS, _binance("ETHBTC", 3))])
    directory = tmp_path / "r"
    directory.mkdir()
    (directory / f"{T0:020d}{FILE_SUFFIX}").write_bytes(file_header() + encode_block(zstandard.ZstdCompressor(),
                                                                                     raw, 1))
    timeline = load_timeline(directory, None, None, None, lambda line: None)
    assert _events(directory) == [
        ("batch", "binance", [("BTCUSDT", ("BTCUSDT", 7)), ("ETHBTC", ("ETHBTC", 2))]),
        ("asked", "binance", "limit=100&symbol=ETHBTC", 1),
        ("batch", "binance", [("ETHBTC", ("ETHBTC", 3))]),
        ("asked", "binance", "limit=100&symbol=BTCUSDT", 1),  # never done with
    ]
    assert timeline.published == [2, 0, 0, 0]
    asked = [event for event in timeline.events if isinstance(event, Asked)]
    assert [(event.time_ns, event.taken) for event in asked] == [(T0 + 15 * MS, True), (T0 + 13 * MS, False)]
    assert timeline.asks("binance") == {("/api/v3/depth", "limit=100&symbol=ETHBTC"): 1,
                                        ("/api/v3/depth", "limit=100&symbol=BTCUSDT"): 1}
