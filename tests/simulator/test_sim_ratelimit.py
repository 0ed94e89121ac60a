"""Binance's REST weight budget, with an injected clock."""

from __future__ import annotations

import pytest

from orderbook.simulator.ratelimit import WeightLimiter, depth_weight


@pytest.mark.parametrize(("limit", "weight"), [(1, 5), (100, 5), (101, 25), (500, 25), (501, 50), (1000, 50),
                                               (1001, 250), (5000, 250)])
def test_depth_weight_bands(limit, weight):
    assert depth_weight(limit) == weight


def test_budget_per_ip_per_minute_window():
    limiter = WeightLimiter(100)
    t = 120.0
    assert [limiter.admit("a", 25, t).used for _ in range(4)] == [25, 50, 75, 100]
    refused = limiter.admit("a", 5, t + 15.2)
    assert (refused.allowed, refused.used, refused.retry_after) == (False, 100, 45)
    assert limiter.admit("b", 50, t + 15.2).allowed  # another IP has its own budget
    assert limiter.admit("a", 5, t + 60.0).used == 5  # the next minute starts afresh
