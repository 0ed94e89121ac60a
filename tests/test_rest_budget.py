"""The REST budget: what it lets through, what it holds back, and for how long. The clock is passed in."""

from __future__ import annotations

import pytest

from orderbook.exchanges.binance import BinanceVenue
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
    assert protocol.snapshot_weight == weight


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
