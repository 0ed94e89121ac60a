"""``bin/book-at`` in process: a recording written here (Binance's frames and answers, as a server records them)
rebuilt by the service's own feed, the book at each moment as the service served it; a gap leaves the venue out,
said on stderr with the feed's words; a TIME outside the recording, a symbol or depth it did not serve, one error
line and exit code 2; a corrupt block, one line, the rest read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard

from orderbook.client import summary_to_json
from orderbook.exchanges.binance import BinanceVenue
from orderbook.proto import orderbook_pb2
from orderbook.recording.format import FILE_SUFFIX, Kind, encode_block, encode_frames, encode_record, file_header
from orderbook.replay import book_at
from orderbook.replay.moment import format_moment, parse_moment

T0 = 1_796_306_587_000_000_000
"""2026-12-03T14:03:07Z, in ns."""
MS = 1_000_000
WS, REST = "ws://venue", "http://venue"
DEPTH = 5
VENUE = BinanceVenue(WS, REST)
LOAD_URL = VENUE.snapshot_url("ETHBTC", VENUE.first_snapshot_depth(DEPTH))


def _diff(at_ns: int, first: int, last: int, bids=(), asks=()) -> tuple[int, bytes]:
    event = {"e": "depthUpdate", "E": at_ns // MS, "s": "ETHBTC", "U": first, "u": last,
             "b": [list(level) for level in bids], "a": [list(level) for level in asks]}
    return at_ns, json.dumps({"stream": "ethbtc@depth@100ms", "data": event}).encode()


def _snapshot(last_id: int, bids, asks) -> bytes:
    return json.dumps({"lastUpdateId": last_id, "bids": [list(level) for level in bids],
                       "asks": [list(level) for level in asks]}).encode()


def _write(directory: Path, blocks: list[bytearray]) -> Path:
    directory.mkdir(exist_ok=True)
    compressor = zstandard.ZstdCompressor()
    path = directory / f"{T0:020d}{FILE_SUFFIX}"
    path.write_bytes(file_header() + b"".join(encode_block(compressor, block, 1) for block in blocks))
    return path


def _session(directory: Path) -> Path:
    """Binance ETHBTC: in step at T0+1 s (snapshot 100, then diffs 101, 102), a gap at T0+3 s (ids 106..106 after
    102), rebuilt at T0+4 s on snapshot 110 (and diff 111); the recording ends at T0+6 s."""
    head, first, second, third = bytearray(), bytearray(), bytearray(), bytearray()
    encode_record(head, Kind.START, T0, 0, {"version": 1, "symbols": ["ETHBTC"], "depth": DEPTH, "summaries": False,
                                            "venues": {"binance": {"ws_url": WS, "rest_url": REST, "options": {}}}},
                  b"")
    listing = json.dumps({"symbols": [{"symbol": "ETHBTC", "status": "TRADING"}]}).encode()
    encode_record(head, Kind.HTTP, T0 + 100 * MS, 0, {"venue": "binance", "url": VENUE.listing_url, "status": 200,
                                                      "sent_ns": T0}, listing)
    encode_record(head, Kind.OPENED, T0 + 200 * MS, 1, {"venue": "binance", "url": f"{WS}/stream"}, b"")
    encode_frames(first, 1, [_diff(T0 + 500 * MS, 100, 101, bids=[("1.5", "2")])])
    encode_record(first, Kind.HTTP, T0 + 900 * MS, 0, {"venue": "binance", "url": LOAD_URL, "status": 200,
                                                       "sent_ns": T0 + 600 * MS},
                  _snapshot(100, [("1.0", "1")], [("2.0", "1")]))
    encode_frames(first, 1, [_diff(T0 + 1000 * MS, 102, 102, asks=[("1.9", "3")]),
                             _diff(T0 + 1001 * MS, 103, 103, bids=[("1.0", "0")])])
    encode_frames(second, 1, [_diff(T0 + 3000 * MS, 106, 106, bids=[("1.6", "1")])])
    encode_frames(second, 1, [_diff(T0 + 3500 * MS, 107, 111, bids=[("1.7", "1")])])
    encode_record(third, Kind.HTTP, T0 + 4000 * MS, 0, {"venue": "binance", "url": LOAD_URL, "status": 200,
                                                        "sent_ns": T0 + 3600 * MS},
                  _snapshot(110, [("1.2", "4")], [("2.1", "1")]))
    encode_frames(third, 1, [_diff(T0 + 5000 * MS, 112, 112, asks=[("2.0", "2")])])
    encode_record(third, Kind.CLOSED, T0 + 6000 * MS, 1, {"reason": "closed", "detail": "by the service"}, b"")
    return _write(directory, [head, first, second, third])


def _run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = book_at.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _json(directory: Path, at: str, capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    code, out, err = _run(str(directory), "--at", at, "--json", capsys=capsys)
    assert code == 0, err
    return json.loads(out), err


def test_the_book_at_a_moment_is_the_snapshot_and_the_diffs_received_by_then(tmp_path: Path, capsys) -> None:
    _session(tmp_path)
    book, err = _json(tmp_path, format_moment(T0 + 2000 * MS), capsys)
    assert err == ""
    assert book == {"spread": 0.4, "bids": [{"exchange": "binance", "price": 1.5, "amount": 2.0}],
                    "asks": [{"exchange": "binance", "price": 1.9, "amount": 3.0},
                             {"exchange": "binance", "price": 2.0, "amount": 1.0}]}
    # A moment within the batch of diffs 102 and 103 (received 1 ms apart): the book before it, as served then.
    before, _ = _json(tmp_path, str((T0 + 1000 * MS) / 1e9), capsys)
    assert [level["price"] for level in before["asks"]] == [2.0]


def test_a_gap_leaves_the_venue_out_and_says_why_until_it_is_rebuilt(tmp_path: Path, capsys) -> None:
    _session(tmp_path)
    book, err = _json(tmp_path, format_moment(T0 + 3200 * MS), capsys)
    assert book == {"spread": None, "bids": [], "asks": []}
    assert err.startswith("book-at: binance was not in step at 2026-12-03T14:03:10.200Z, left out (since "
                          "2026-12-03T14:03:10.000Z: binance ETHBTC: rebuilding the book: gap: at id 106..106)")
    rebuilt, err = _json(tmp_path, format_moment(T0 + 5500 * MS), capsys)
    assert err == ""
    assert rebuilt["bids"] == [{"exchange": "binance", "price": 1.7, "amount": 1.0},
                               {"exchange": "binance", "price": 1.2, "amount": 4.0}]
    assert rebuilt["asks"] == [{"exchange": "binance", "price": 2.0, "amount": 2.0},
                               {"exchange": "binance", "price": 2.1, "amount": 1.0}]


def test_the_ladder_and_the_json_are_bin_clients(tmp_path: Path, capsys) -> None:
    _session(tmp_path)
    code, out, _ = _run(str(tmp_path), "--at", "2026-12-03T14:03:12.500Z", capsys=capsys)
    assert code == 0
    assert out.splitlines()[0].split() == ["BIDS", "|", "ASKS"]
    assert out.splitlines()[-1] == "spread 0.30000000    at 2026-12-03T14:03:12.500Z"
    code, out, _ = _run(str(tmp_path), "--at", "2026-12-03T14:03:12.500Z", "--json", "--depth", "1", capsys=capsys)
    summary = orderbook_pb2.Summary(spread=0.3)  # the exact difference, rounded once
    summary.bids.add(exchange="binance", price=1.7, amount=1.0)
    summary.asks.add(exchange="binance", price=2.0, amount=2.0)
    assert out == summary_to_json(summary) + "\n"


@pytest.mark.parametrize(("argv", "error"), [
    (["--at", "2026-12-03T14:03:06Z"], "--at 2026-12-03T14:03:06.000Z: before the recording, which begins at "
                                       "2026-12-03T14:03:07.000Z"),
    (["--at", "2026-12-03T14:03:14Z"], "--at 2026-12-03T14:03:14.000Z: after the recording, which ends at "
                                       "2026-12-03T14:03:13.000Z"),
    (["--at", "yesterday"], "--at: expected ISO 8601 (2026-12-03T14:03:07.250Z) or Unix seconds (1796306587.25), "
                            "got 'yesterday'"),
    (["--at", "1796306590", "--symbol", "btcusdt"], "--symbol BTCUSDT: not recorded (the recording follows ETHBTC)"),
    (["--at", "1796306590", "--depth", "6"], "--depth 6: the recording's server served 5 levels a side"),
])
def test_a_moment_outside_the_recording_or_what_it_did_not_serve_is_one_line_and_exit_2(
        tmp_path: Path, capsys, argv: list[str], error: str) -> None:
    _session(tmp_path)
    assert _run(str(tmp_path), *argv, capsys=capsys) == (2, "", f"book-at: error: {error}\n")


def test_no_recording_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    assert _run(str(tmp_path), "--at", "1", capsys=capsys) == (
        2, "", f"book-at: error: {tmp_path}: no recording here (no *.obrec file)\n")


def test_a_corrupt_block_is_one_line_and_the_rest_is_read(tmp_path: Path, capsys) -> None:
    path = _session(tmp_path)
    data = bytearray(path.read_bytes())
    second = data.find(b"OBRB", data.find(b"OBRB", data.find(b"OBRB") + 1) + 1)  # the block of the gap
    data[second + 30] ^= 0xFF
    path.write_bytes(bytes(data))
    book, err = _json(tmp_path, format_moment(T0 + 5500 * MS), capsys)
    corrupt, gap = err.splitlines()
    skipped = data.find(b"OBRB", second + 1) - second
    assert corrupt.endswith(f"corrupt at byte {second} (a block whose checksum fails): {skipped} bytes skipped")
    # The diffs of the lost block never reach the book; the records after it are read: the rebuild's snapshot
    # (taken by nothing: the stream saw no gap) and diff 112, the gap the book sees.
    assert gap.endswith("binance ETHBTC: rebuilding the book: gap: at id 112..112)")
    assert book == {"spread": None, "bids": [], "asks": []}


def test_a_moment_is_iso_8601_or_unix_seconds_to_the_nanosecond() -> None:
    assert parse_moment("2026-12-03T14:03:07.250Z") == parse_moment("1796306587.25") == 1_796_306_587_250_000_000
    assert parse_moment("2026-12-03T15:03:07.250+01:00") == parse_moment("2026-12-03T14:03:07.250")
    assert parse_moment("1796306587.123456789") == 1_796_306_587_123_456_789
    assert format_moment(1_796_306_587_250_999_999) == "2026-12-03T14:03:07.250Z"
