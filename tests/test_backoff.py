"""Reconnect delays: bounded, growing, capped, reset, and jittered (seeded, so the tests are repeatable)."""

from __future__ import annotations

import random

import pytest

from orderbook.backoff import Backoff


class Extreme(random.Random):
    """An rng that always picks one end of the interval, to see the bounds exactly."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def test_ceiling_grows_by_doubling_up_to_the_cap():
    backoff = Backoff(base=0.5, cap=30.0, rng=Extreme(high=True))
    assert [backoff.next() for _ in range(9)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.attempt == 9


def test_the_ceiling_says_the_most_the_next_delay_can_be():
    backoff = Backoff(base=0.25, cap=4.0, rng=Extreme(high=True))
    ceilings = []
    for _ in range(7):
        ceilings.append(backoff.ceiling)
        assert backoff.next() == ceilings[-1]
    assert ceilings == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_floor_is_half_the_base():
    backoff = Backoff(base=0.5, cap=30.0, rng=Extreme(high=False))
    assert [backoff.next() for _ in range(5)] == [0.25] * 5


def test_reset_starts_again_from_the_base():
    backoff = Backoff(base=1.0, cap=10.0, rng=Extreme(high=True))
    for _ in range(6):
        backoff.next()
    backoff.reset()
    assert backoff.attempt == 0
    assert [backoff.next() for _ in range(3)] == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("seed", range(5))
def test_every_delay_is_within_its_bounds(seed):
    backoff = Backoff(base=0.5, cap=30.0, rng=random.Random(seed))
    for attempt in range(40):
        ceiling = min(30.0, 0.5 * 2**attempt)
        assert 0.25 <= backoff.next() <= ceiling


def test_huge_attempt_counts_stay_at_the_cap():
    backoff = Backoff(base=0.5, cap=30.0, rng=Extreme(high=True))
    backoff.attempt = 10_000  # never an OverflowError, however long an exchange stays down
    assert backoff.next() == 30.0


def test_jitter_is_seeded_and_spread():
    def delays_for(seed: int) -> list[float]:
        backoff = Backoff(rng=random.Random(seed))
        return [backoff.next() for _ in range(10)]

    assert delays_for(7) == delays_for(7)  # same seed, same delays
    capped = Backoff(base=0.5, cap=30.0, rng=random.Random(1))
    capped.attempt = 20
    delays = [capped.next() for _ in range(200)]
    assert len(set(delays)) == 200  # jittered: restarts do not synchronise
    assert min(delays) < 5.0 and max(delays) > 25.0  # spread over the whole interval
    other = Backoff(base=0.5, cap=30.0, rng=random.Random(2))
    other.attempt = 20
    assert [other.next() for _ in range(5)] != delays[:5]


def test_a_base_equal_to_the_cap_is_allowed():
    backoff = Backoff(base=2.0, cap=2.0, rng=Extreme(high=True))
    assert [backoff.next() for _ in range(3)] == [2.0, 2.0, 2.0]


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_bad_parameters(base, cap):
    with pytest.raises(ValueError):
        Backoff(base=base, cap=cap)
