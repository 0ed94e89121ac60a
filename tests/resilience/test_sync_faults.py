"""Streams that stop fitting the book: a Binance update-id gap, a snapshot older than the stream, Bitstamp diffs
out of order."""

from __future__ import annotations

import time
from collections.abc import Callable

from resilience_harness import IMMEDIATE, System, changed, delta

from tests.support.waiting import wait_until

FETCH_AGAIN_PAUSE = 0.25
"""The server waits half its backoff base (0.5 s) before asking for a snapshot again."""


def test_a_binance_update_id_gap_rebuilds_binance_only(system: System) -> None:
    before = system.metrics()

    outage = system.outage("binance", lambda: system.control.gap(events=5), reconnects=False)

    assert outage.detected_after < IMMEDIATE
    after = system.metrics()
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange="binance") == {"reason=gap": 1}
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange="bitstamp") == {}
    assert system.control.stats()["binance"]["events_hidden"] == 5
    system.assert_survived()


def test_a_snapshot_older_than_the_stream_is_fetched_again_on_the_same_connection(
    start_system: Callable[..., System],
) -> None:
    """The next snapshot is frozen now; the stream moves on; a gap forces a rebuild, and the frozen snapshot then
    predates the diffs buffered while it was on its way (0.3 s). The server must fetch again, not reconnect."""
    system = start_system("--snapshot-delay", "0.3")
    system.control.stale_snapshot(count=1)
    time.sleep(0.5)  # ~50 events: the frozen snapshot is now far behind the stream
    before = system.metrics()
    rest_before = system.control.stats()["binance"]["rest_requests"]

    system.outage("binance", lambda: system.control.gap(events=1), extra=FETCH_AGAIN_PAUSE + 2 * 0.3,
                  reconnects=False)

    after = wait_until(system.metrics, 10, "the rebuilt book deepened", interval=0.05, accept=lambda samples: delta(
        before, samples, "orderbook_book_deepenings_total", exchange="binance", result="deepened") == 1)
    stats = system.control.stats()["binance"]
    assert stats["stale_snapshots_served"] == 1
    assert stats["rest_requests"] - rest_before == 3, "one stale snapshot, one that fits, the deeper one after it"
    assert "older than the stream; fetching again" in system.new_log()
    # The gap is rebuilt on the same connection; the stale snapshot cost a second request, not a connection.
    assert delta(before, after, "orderbook_exchange_connects_total", exchange="binance") == 0
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange="binance") == {"reason=gap": 1}
    system.assert_survived()


def test_a_snapshot_older_than_the_stream_is_never_served_in_a_quiet_market(system: System) -> None:
    """docs/protocols.md, Binance step 1-3: note the first buffered event's U, then fetch; a snapshot with
    lastUpdateId < U is too old. Reconnect while the market is quiet, with a frozen snapshot waiting: Binance
    is not served until a snapshot can be checked against the stream, and the stale one is then refused."""
    system.control.stale_snapshot(count=1)
    time.sleep(0.5)  # the frozen snapshot is ~50 events behind
    system.control.pause()
    system.control.drop("binance")
    time.sleep(1.5)  # reconnected (backoff <= 0.5 s); no diff yet, so no snapshot asked for

    assert system.control.stats()["binance"].get("stale_snapshots_served", 0) == 0
    assert system.reader.latest == system.truth_of("bitstamp"), "Binance served before it could be vouched for"

    system.control.resume()  # the first diff lets the snapshot be checked: the frozen one is refused
    system.reader.wait_for(lambda book: "binance" in book.exchanges(), 10, "with Binance back")
    assert system.control.stats()["binance"]["stale_snapshots_served"] == 1
    system.settle()
    system.assert_survived()


def test_bitstamp_diffs_out_of_order_rebuild_bitstamp_only(system: System) -> None:
    before = system.metrics()

    outage = system.outage("bitstamp", system.control.reorder, reconnects=False)

    assert outage.detected_after < IMMEDIATE
    after = system.metrics()
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange="bitstamp") == {"reason=out_of_order": 1}
    assert changed(before, after, "orderbook_book_rebuilds_total", exchange="binance") == {}
    assert system.control.stats()["bitstamp"]["diffs_reordered"] == 2
    system.assert_survived()
