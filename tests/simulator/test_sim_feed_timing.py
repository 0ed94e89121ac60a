"""When the model feed sends each symbol's events: every symbol at the rate, the others in turn, spread over time.

The feed runs on a fake clock here: its ``gevent.sleep`` advances the clock by the slice and ``time.monotonic``
reads it, so the test sees exactly which events each 2 ms slice sends, with no real waiting and no timing noise.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from types import SimpleNamespace

import pytest

from orderbook.simulator import feed as feed_module
from orderbook.simulator.feed import SLICE_SECONDS, ModelFeed, Pause
from orderbook.simulator.probe import ProbeLog


class _Stop(Exception):
    pass


class _Clock:
    def __init__(self, slices: int) -> None:
        self.now = 1000.0
        self.left = slices

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if not self.left:
            raise _Stop
        self.left -= 1
        self.now += seconds


class _Market:
    """An exchange and its model at once: ``step`` makes an event, ``publish`` notes when it was sent."""

    def __init__(self, name: str, clock: _Clock, sent: list[tuple[float, str]]) -> None:
        self.name, self._clock, self._sent = name, clock, sent

    def step(self) -> str:
        return self.name

    def mark_best_bid(self, lots: int) -> str:
        return self.name

    def publish(self, change: str) -> None:
        self._sent.append((self._clock.now, change))

    def flush(self, now: float) -> None:
        pass

    def tracing(self, on_written) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def _run(monkeypatch, symbols: int, rate: float, seconds: float, probe_every: int = 0) -> list[tuple[float, str]]:
    clock = _Clock(round(seconds / SLICE_SECONDS))
    monkeypatch.setattr(feed_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(feed_module, "gevent", SimpleNamespace(sleep=clock.sleep))
    sent: list[tuple[float, str]] = []
    default = _Market("DEFAULT", clock, sent)
    others = [_Market(f"S{i}", clock, sent) for i in range(symbols - 1)]
    feed = ModelFeed(default, default, rate, Pause(), ProbeLog(probe_every),  # type: ignore[arg-type]
                     [(market, market) for market in others])  # type: ignore[misc]
    with pytest.raises(_Stop):
        feed._run()
    return sent


def test_every_symbol_gets_the_rate_and_the_others_are_spread_over_each_period_not_sent_at_once(monkeypatch):
    sent = _run(monkeypatch, symbols=100, rate=10.0, seconds=2.0)
    per_symbol = Counter(name for _, name in sent)
    assert len(per_symbol) == 100
    assert all(19 <= count <= 20 for count in per_symbol.values()), per_symbol  # 10 a second each, for 2 s
    per_slice = Counter(at for at, _ in sent)
    # 1,000 events a second in 2 ms slices: about 2 a slice. All at once, one slice would have held 100.
    assert max(per_slice.values()) <= 4, per_slice.most_common(3)
    for name in ("S0", "S50", "DEFAULT"):
        times = [at for at, each in sent if each == name]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(0.09 <= gap <= 0.11 for gap in gaps), (name, gaps)
    firsts = sorted(next(at for at, each in sent if each == f"S{i}") for i in range(99))
    assert firsts[-1] - firsts[0] >= 0.09  # the others' first events spread over a whole period


def test_in_its_slice_the_default_symbols_event_comes_last_so_a_probe_is_last_of_its_batch(monkeypatch):
    sent = _run(monkeypatch, symbols=400, rate=10.0, seconds=1.0, probe_every=1)
    slices: dict[float, list[str]] = {}
    for at, name in sent:
        slices.setdefault(at, []).append(name)
    with_default = [names for names in slices.values() if "DEFAULT" in names]
    assert len(with_default) in (9, 10)  # 10 a second (the clock's float sums may leave the 10th a slice late)
    assert all(names[-1] == "DEFAULT" and names.count("DEFAULT") == 1 for names in with_default)


def test_one_symbol_keeps_its_rate(monkeypatch):
    sent = _run(monkeypatch, symbols=1, rate=50.0, seconds=1.0)
    assert {name for _, name in sent} == {"DEFAULT"} and 49 <= len(sent) <= 50
