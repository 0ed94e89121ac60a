"""Malformed frames of every kind the simulator sends, on each exchange: counted by reason, logged once with the
raw text cut short, skipped; and when the frame may have carried a change that is now lost, that exchange (and
only that one) is rebuilt. A huge frame is refused by the 1 MiB frame limit without being read into memory."""

from __future__ import annotations

import re
import time

import pytest
from resilience_harness import EXCHANGES, IMMEDIATE, MAX_STALL, System, changed, other, delta

HUGE = 8 << 20
FRAME_LIMIT = 1 << 20
LOGGED_EXCERPT = 200
"""The server logs at most this many characters of a bad frame's raw text (RAW_EXCERPT)."""

# (exchange, kind) -> (orderbook_bad_frames_total reason, whether the exchange must be rebuilt)
EXPECTED = {
    # Binance: ids reveal any lost diff, so an unreadable frame is skipped; a diff with bad levels is not.
    ("binance", "not_json"): ("not_json", False),
    ("binance", "unknown_shape"): ("unknown_event", False),
    ("binance", "non_numeric"): ("bad_number", True),
    ("binance", "negative"): ("bad_number", True),
    ("binance", "nan"): ("bad_number", True),
    ("binance", "huge"): ("too_large", True),
    # Bitstamp has no sequence number: any frame that may have been a diff and cannot be applied loses the book.
    ("bitstamp", "not_json"): ("not_json", True),
    ("bitstamp", "unknown_shape"): ("bad_id", True),
    ("bitstamp", "non_numeric"): ("bad_number", True),
    ("bitstamp", "negative"): ("bad_number", True),
    ("bitstamp", "nan"): ("bad_number", True),
    ("bitstamp", "huge"): ("too_large", True),
}
LOSSY = [key for key, (_, rebuilds) in EXPECTED.items() if rebuilds and key[1] != "huge"]
HARMLESS = [key for key, (_, rebuilds) in EXPECTED.items() if not rebuilds]


def _assert_logged_once(system: System, exchange: str, reason: str) -> None:
    """One warning, naming the reason and quoting the raw frame (at most LOGGED_EXCERPT characters of it)."""
    lines = [line for line in system.new_log().splitlines() if f"{exchange}: bad frame (" in line]
    assert len(lines) == 1, lines
    assert f"({reason}: " in lines[0] and "b'{\"" in lines[0], lines[0]
    assert len(lines[0]) < 2 * LOGGED_EXCERPT + 150, lines[0]  # the reason may quote the frame too


@pytest.mark.parametrize(("exchange", "kind"), LOSSY)
def test_a_bad_frame_that_may_have_carried_a_diff_rebuilds_that_exchange(
    system: System, exchange: str, kind: str
) -> None:
    reason, _ = EXPECTED[(exchange, kind)]
    before = system.metrics()

    outage = system.outage(exchange, lambda: system.control.malformed(exchange, kind), reconnects=False)

    assert outage.detected_after < IMMEDIATE
    after = system.metrics()
    assert changed(before, after, "orderbook_bad_frames_total", exchange=exchange) == {f"reason={reason}": 1}
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange=exchange) == {"reason=bad_frame": 1}
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange=other(exchange)) == {}
    assert delta(before, after, "orderbook_exchange_connects_total", exchange=exchange) == 0  # rebuilt in place
    _assert_logged_once(system, exchange, reason)
    system.assert_survived()


@pytest.mark.parametrize(("exchange", "kind"), HARMLESS)
def test_an_unreadable_frame_that_loses_nothing_is_counted_logged_once_and_skipped(
    system: System, exchange: str, kind: str
) -> None:
    reason, _ = EXPECTED[(exchange, kind)]
    before = system.metrics()
    system.mark_log()
    started = time.monotonic()
    for _ in range(3):
        system.control.malformed(exchange, kind)
        time.sleep(0.1)
    time.sleep(0.5)
    now = time.monotonic()

    after = system.metrics()
    assert system.reader.absences(exchange, started, now) == []
    assert system.reader.longest_stall(exchange, started, now) < MAX_STALL
    assert changed(before, after, "orderbook_bad_frames_total", exchange=exchange) == {f"reason={reason}": 3}
    assert changed(before, after, "orderbook_book_rebuilds_total") == {}
    assert changed(before, after, "orderbook_exchange_connects_total") == {}
    _assert_logged_once(system, exchange, reason)  # the next two are counted, not logged
    system.settle()
    system.assert_survived()


def _huge_frame(system: System, exchange: str) -> tuple[float, float | None]:
    """Send an 8 MiB frame; check it is refused, counted and rebuilt; return the growth of RSS and of peak RSS."""
    before = system.metrics()
    peak_before = system.peak_rss()

    outage = system.outage(exchange, lambda: system.control.malformed(exchange, "huge", size=HUGE))

    assert outage.detected_after < IMMEDIATE
    after = system.metrics()
    peak_after = system.peak_rss()
    assert changed(before, after, "orderbook_bad_frames_total", exchange=exchange) == {"reason=too_large": 1}
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange=exchange) == {"reason=bad_frame": 1}
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange=other(exchange)) == {}
    assert re.search(rf"{exchange}: ending the session: bad_frame: a frame of \d+ bytes is over the "
                     rf"{FRAME_LIMIT}-byte limit", system.new_log())
    rss_growth = after("process_resident_memory_bytes") - before("process_resident_memory_bytes")
    peak_growth = None if peak_before is None or peak_after is None else peak_after - peak_before
    print(f"{exchange}: RSS grew {rss_growth / 2**20:.1f} MiB, peak RSS {(peak_growth or 0) / 2**20:.1f} MiB")
    return rss_growth, peak_growth


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_a_huge_frame_is_refused_by_the_size_limit(system: System, exchange: str) -> None:
    _huge_frame(system, exchange)
    system.assert_survived()


def test_a_huge_frame_is_never_read_into_memory(system: System) -> None:
    """The limit is checked on the frame's length, before its payload is read; nothing after that may read the
    payload either. Peak RSS (VmHWM) shows every such read; the current RSS only when the memory is kept."""
    rss_growth, peak_growth = _huge_frame(system, "binance")

    if peak_growth is not None:
        assert peak_growth < HUGE / 2, f"peak RSS grew by {peak_growth / 2**20:.1f} MiB after a {HUGE >> 20} MiB frame"
    assert rss_growth < HUGE / 2, f"RSS grew by {rss_growth / 2**20:.1f} MiB after a {HUGE >> 20} MiB frame"
    system.assert_survived()
