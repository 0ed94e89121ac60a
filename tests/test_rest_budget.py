"""The REST budget: what it lets through, what it holds back, and for how long. The clock is passed in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderbook.exchanges.binance import FIRST_SNAPSHOT_MARGIN, BinanceVenue, depth_weight, first_snapshot_limit
from orderbook.exchanges.bitstamp import BitstampVenue
from orderbook.exchanges.messages import BookSnapshot
from orderbook.exchanges.sync import Outcome
from orderbook.rest import AUDIT_SHARE, SNAPSHOT_SHARE, RestBudget


START = 1_000_040.0
"""20 s into a minute of the epoch (1,000,020 is a whole number of minutes)."""


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_requests_are_paced_evenly_never_a_burst():
    clock = Clock()
    budget = RestBudget(6000, clock)
    delays = []
    for _ in range(60):  # 60 snapshots of weight 50: 3,000, half the limit, spread over the minute
        delay = budget.delay(50, SNAPSHOT_SHARE)
        delays.append(delay)
        clock.now += delay
        budget.spend(50)
    assert delays == [0.0] + [pytest.approx(1.0)] * 59  # one a second: half of 6,000 a minute at 50 each
    assert budget.used() == 3000
    assert budget.delay(50, SNAPSHOT_SHARE) == pytest.approx(1.0)  # and the first has aged out by then


def test_own_spending_ages_out_of_a_rolling_minute():
    clock = Clock()
    budget = RestBudget(6000, clock)
    budget.spend(50)
    clock.now += 30
    budget.spend(40)
    assert budget.used() == 90
    clock.now += 30
    assert budget.used() == 40 and budget.delay(20, 1.0) == 0


def test_the_venues_own_figure_counts_until_its_minute_ends():
    """X-MBX-USED-WEIGHT-1M counts every client on the IP, for the current minute."""
    clock = Clock()
    budget = RestBudget(6000, clock)
    budget.report(2990)
    assert budget.used() == 2990
    assert budget.delay(50, SNAPSHOT_SHARE) == pytest.approx(40.0)  # the minute ends 40 s from now
    clock.now += 40
    assert budget.used() == 0 and budget.delay(50, SNAPSHOT_SHARE) == 0


def test_audits_stop_well_before_snapshots_do():
    clock = Clock()
    budget = RestBudget(6000, clock)
    budget.report(700)
    assert budget.delay(50, AUDIT_SHARE) > 0  # 750 > 600: the audit waits
    assert budget.delay(50, SNAPSHOT_SHARE) == 0  # a book that needs a snapshot does not


def test_hold_off_delays_every_request_until_it_ends():
    clock = Clock()
    budget = RestBudget(6000, clock)
    budget.hold_off(7)
    assert budget.delay(5, SNAPSHOT_SHARE) == pytest.approx(7)
    budget.hold_off(2)  # a shorter one does not cut the longer short
    assert budget.delay(5, SNAPSHOT_SHARE) == pytest.approx(7)
    clock.now += 7
    assert budget.delay(5, SNAPSHOT_SHARE) == 0


@pytest.mark.parametrize(("limit", "weight"), [(1, 5), (100, 5), (101, 25), (500, 25), (501, 50), (1000, 50),
                                                (1001, 250), (5000, 250)])
def test_binance_snapshot_weight_by_limit_band(limit, weight):
    protocol = BinanceVenue("wss://stream.binance.com:9443", "https://api.binance.com", limit)
    assert protocol.snapshot_weight() == weight


def test_too_old_retries_at_5000_levels_stay_within_half_the_weight_limit():
    """Retries of a 5,000-level snapshot (weight 250) are paced to at most 12 a minute, not one per 0.25 s."""
    clock = Clock()
    budget = RestBudget(6000, clock)
    sent = 0
    while clock.now < START + 60:
        wait = budget.delay(250, SNAPSHOT_SHARE)
        if wait:
            clock.now += wait
            continue
        budget.spend(250)
        sent += 1
        clock.now += 0.25
    assert sent <= 13  # 12 in any minute (3,000 / 250), plus the first of the next


# -- the first snapshot of a book, sized to what is served ------------------------------------------------------------


@pytest.mark.parametrize(("served", "kept", "first"), [
    (10, 1000, 100),  # the defaults: the lightest band (weight 5), ten times what is served
    (1, 1000, 100), (50, 1000, 100),  # twice the served levels still fit in 100
    (51, 1000, 500), (250, 1000, 500),  # the next band, weight 25
    (251, 1000, 1000), (500, 1000, 1000),  # as deep as kept: nothing to deepen
    (10, 5000, 100), (600, 5000, 5000), (1000, 5000, 5000),
    (10, 60, 60), (10, 100, 100), (5, 5, 5),  # never more than kept
])
def test_a_books_first_snapshot_takes_the_lightest_band_that_holds_twice_the_served_levels(served, kept, first):
    assert first_snapshot_limit(served, kept) == first


@given(st.integers(min_value=1, max_value=1000), st.integers(min_value=1, max_value=5000))
def test_no_cheaper_first_snapshot_holds_the_margin_and_none_of_its_weight_holds_more(served, kept):
    kept = max(kept, served)  # the configuration refuses --depth above --binance-snapshot-limit
    first = first_snapshot_limit(served, kept)
    wanted = min(kept, FIRST_SNAPSHOT_MARGIN * served)
    assert served <= wanted <= first <= kept
    assert depth_weight(first) == min(depth_weight(limit) for limit in range(wanted, kept + 1))
    assert first == kept or depth_weight(first + 1) > depth_weight(first)  # the whole band: more levels, no more weight


def test_the_venues_say_what_their_first_snapshots_ask_for():
    binance = BinanceVenue("wss://stream.binance.com:9443", "https://api.binance.com", 1000)
    assert binance.first_snapshot_depth(10) == 100
    assert binance.snapshot_url("ETHBTC", 100) == (
        "https://api.binance.com/api/v3/depth?symbol=ETHBTC&limit=100&symbolStatus=TRADING")
    assert (binance.snapshot_weight(100), binance.snapshot_weight(), binance.snapshot_weight(5000)) == (5, 50, 250)
    assert binance.first_snapshot_depth(0) == 1000  # every level served (a bare sync): as deep as kept
    sync = binance.new_sync(watch_depth=10)  # a book's, built on its first snapshot: 100 levels a side at most
    assert sync.on_snapshot(BookSnapshot(1, tuple((1000 - i, 1) for i in range(100)), ((2000, 1),))) is Outcome.APPLIED
    assert (sync.book.bid_floor, sync.book.ask_ceiling) == (901, None)  # 100 of 100 bids: the venue's go on past
    bitstamp = BitstampVenue("wss://ws.bitstamp.net", "https://www.bitstamp.net")
    assert bitstamp.first_snapshot_depth(10) is None  # the endpoint takes no depth: always the whole book
    assert bitstamp.snapshot_url("ETHBTC", 100) == "https://www.bitstamp.net/api/v2/order_book/ethbtc/"


def test_100_symbols_first_snapshots_go_within_about_ten_seconds_and_their_deepening_after_within_the_budget():
    """Start-up of 100 symbols at the defaults, as the queue orders it (every first snapshot before any deepening):
    the first snapshots are paced a tenth of a second apart, then the 1,000-level ones a second apart, and no
    minute ever holds more than half of Binance's 6,000 weight."""
    clock = Clock()
    budget = RestBudget(6000, clock)
    sent: list[tuple[float, int]] = []
    for weight in [depth_weight(100)] * 100 + [depth_weight(1000)] * 100:
        while delay := budget.delay(weight, SNAPSHOT_SHARE):  # as RequestQueue.wait_turn asks again after waiting
            clock.now += delay
        budget.spend(weight)
        sent.append((clock.now, weight))
    assert sent[99][0] - START == pytest.approx(9.9)  # the 100th first snapshot: every book in step
    assert sent[-1][0] - START == pytest.approx(9.9 + 100, abs=2)  # every book deepened a second apart after
    for end, _ in sent:  # every rolling minute, as the budget counts it, up to each request
        assert sum(weight for at, weight in sent if end - 60 < at <= end) <= 3000
