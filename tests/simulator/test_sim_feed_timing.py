"""When the model feed sends each symbol's events: every symbol at the rate; Bitstamp's pairs in turn, spread over
time; Binance's symbols together on the venue's 100-ms beat (docs/protocols.md, "When frames come").

The feed runs on a fake clock here: its ``gevent.sleep`` advances the clock by what it asks and ``time.monotonic``
reads it, so the test sees exactly which events each slice sends, with no real waiting and no timing noise.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from types import SimpleNamespace
from typing import NamedTuple

import pytest

from orderbook.simulator import feed as feed_module
from orderbook.simulator.binance import BinanceExchange
from orderbook.simulator.bitstamp import BitstampExchange
from orderbook.simulator.feed import ModelFeed, Pause
from orderbook.simulator.probe import ProbeLog


class _Stop(Exception):
    pass


class _Clock:
    """``late``: how late each sleep wakes, in turn (a busy hub), then none."""

    def __init__(self, seconds: float, late: Sequence[float] = ()) -> None:
        self.now = 1000.0
        self.end = self.now + seconds
        self._late = iter(late)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        seconds += next(self._late, 0.0)
        if self.now + seconds > self.end + 1e-9:
            raise _Stop
        self.now += seconds


class Sent(NamedTuple):
    at: float
    name: str
    stamp: int | None
    """The venue's ``beat_ms`` when the event was published: the event time its frame carries, if set."""


class _Market:
    """An exchange and its model at once: ``step`` makes an event, ``publish`` notes when it was sent."""

    def __init__(self, name: str, clock: _Clock, sent: list[Sent], venue: _Market | None = None) -> None:
        self.name, self._clock, self._sent = name, clock, sent
        self.venue = venue or self
        self.beat_ms: int | None = None

    def step(self) -> str:
        return self.name

    def mark_best_bid(self, lots: int) -> str:
        return self.name

    def publish(self, change: str) -> None:
        self._sent.append(Sent(self._clock.now, change, self.venue.beat_ms))

    def flush(self, now: float) -> None:
        pass

    def tracing(self, on_written) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def _run(monkeypatch, symbols: int, rate: float, seconds: float, probe_every: int = 0,
         beat: float | None = None, late: Sequence[float] = ()) -> list[Sent]:
    clock = _Clock(seconds, late)
    monkeypatch.setattr(feed_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(feed_module, "gevent", SimpleNamespace(sleep=clock.sleep))
    sent: list[Sent] = []
    default = _Market("DEFAULT", clock, sent)
    others = [_Market(f"S{i}", clock, sent, default) for i in range(symbols - 1)]
    feed = ModelFeed(default, default, rate, Pause(), ProbeLog(probe_every),  # type: ignore[arg-type]
                     [(market, market) for market in others], beat)  # type: ignore[misc]
    with pytest.raises(_Stop):
        feed._run()
    return sent


def _by_slice(sent: list[Sent]) -> dict[float, list[Sent]]:
    slices: dict[float, list[Sent]] = {}
    for each in sent:
        slices.setdefault(each.at, []).append(each)
    return slices


def test_the_venues_beats_are_binance_s_100ms_and_none_for_bitstamp():
    assert (BinanceExchange.beat, BitstampExchange.beat) == (0.1, None)


def test_with_no_beat_every_symbol_gets_the_rate_and_the_others_are_spread_over_each_period(monkeypatch):
    sent = _run(monkeypatch, symbols=100, rate=10.0, seconds=2.0)
    per_symbol = Counter(each.name for each in sent)
    assert len(per_symbol) == 100
    assert all(19 <= count <= 20 for count in per_symbol.values()), per_symbol  # 10 a second each, for 2 s
    per_slice = Counter(each.at for each in sent)
    # 1,000 events a second in 2 ms slices: about 2 a slice. All at once, one slice would have held 100.
    assert max(per_slice.values()) <= 4, per_slice.most_common(3)
    for name in ("S0", "S50", "DEFAULT"):
        times = [each.at for each in sent if each.name == name]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(0.09 <= gap <= 0.11 for gap in gaps), (name, gaps)
    firsts = sorted(next(each.at for each in sent if each.name == f"S{i}") for i in range(99))
    assert firsts[-1] - firsts[0] >= 0.09  # the others' first events spread over a whole period
    assert {each.stamp for each in sent} == {None}  # each frame stamped when it is made


def test_on_a_beat_every_symbol_sends_once_a_beat_together_stamped_alike_the_default_last(monkeypatch):
    sent = _run(monkeypatch, symbols=100, rate=10.0, seconds=2.0, probe_every=1, beat=0.1)
    slices = _by_slice(sent)
    assert 19 <= len(slices) <= 20  # a beat every 100 ms
    beats = sorted(slices)
    assert all(0.0999 <= b - a <= 0.1001 for a, b in zip(beats, beats[1:]))
    for events in slices.values():
        names = [each.name for each in events]
        assert sorted(Counter(names).values()) == [1] * 100, Counter(names).most_common(2)  # each once, all
        assert names[-1] == "DEFAULT"  # the probe's symbol: the last place of the burst
        assert len({each.stamp for each in events}) == 1 and events[0].stamp is not None


def test_a_beat_that_comes_late_does_not_bring_the_next_close_behind_it(monkeypatch):
    """A busy hub wakes the feed 70 ms late once: the beat after it comes 60 ms after that one, not 30 ms (frames
    of two beats 30 ms apart would be as good as one burst), and the grid resumes."""
    sent = _run(monkeypatch, symbols=2, rate=10.0, seconds=2.0, beat=0.1, late=(0.0, 0.07))  # the 2nd beat late
    beats = sorted(_by_slice(sent))
    gaps = [round(b - a, 3) for a, b in zip(beats, beats[1:])]
    assert gaps[:3] == [0.17, 0.06, 0.1], gaps


def test_on_a_beat_a_slower_rate_sends_each_symbol_at_most_once_a_beat_and_keeps_the_rate(monkeypatch):
    sent = _run(monkeypatch, symbols=50, rate=3.0, seconds=4.0, beat=0.1)
    per_symbol = Counter(each.name for each in sent)
    assert len(per_symbol) == 50 and all(11 <= count <= 12 for count in per_symbol.values()), per_symbol
    for events in _by_slice(sent).values():
        names = [each.name for each in events]
        assert len(names) == len(set(names)) and 0 < len(names) <= 17  # about 0.3 x 50 symbols a beat


def test_in_its_slice_the_default_symbols_event_comes_last_so_a_probe_is_last_of_its_batch(monkeypatch):
    sent = _run(monkeypatch, symbols=400, rate=10.0, seconds=1.0, probe_every=1)
    with_default = [[each.name for each in events] for events in _by_slice(sent).values()
                    if any(each.name == "DEFAULT" for each in events)]
    assert len(with_default) in (9, 10)  # 10 a second (the clock's float sums may leave the 10th a slice late)
    assert all(names[-1] == "DEFAULT" and names.count("DEFAULT") == 1 for names in with_default)


@pytest.mark.parametrize("beat", [None, 0.1])
def test_one_symbol_keeps_its_rate_spread_over_time_whatever_the_venue(monkeypatch, beat):
    """Alone, 50 events a second stay 50 slices: a rate above the venue's 10 frames a second is a load, not the venue
    (bunched into beats it would measure the bunching)."""
    sent = _run(monkeypatch, symbols=1, rate=50.0, seconds=1.0, beat=beat)
    assert {each.name for each in sent} == {"DEFAULT"} and 49 <= len(sent) <= 50
    assert len(_by_slice(sent)) == len(sent)


def test_above_one_event_a_beat_the_symbols_stay_spread_as_a_load(monkeypatch):
    """50 events a second each, over 10 symbols: more than a beat carries (the venue would merge them into one
    frame), so spread over 2-ms slices as with no beat."""
    sent = _run(monkeypatch, symbols=10, rate=50.0, seconds=1.0, beat=0.1)
    per_symbol = Counter(each.name for each in sent)
    assert len(per_symbol) == 10 and all(49 <= count <= 50 for count in per_symbol.values()), per_symbol
    assert max(Counter(each.at for each in sent).values()) <= 3
    assert {each.stamp for each in sent} == {None}


def _beat_at(rate: float, others: int = 1) -> float | None:
    market = _Market("M", _Clock(1.0), [])
    feed = ModelFeed(market, market, 10.0, Pause(), others=[(market, market)] * others,  # type: ignore[arg-type,list-item]
                     beat=0.1)
    feed.rate = rate  # as the control API's set_rate does
    return feed.beat


def test_the_beat_follows_the_rate_as_it_is_changed():
    assert [_beat_at(rate) for rate in (10.0, 200.0, 3.0)] == [0.1, None, 0.1]
    assert _beat_at(10.0, others=0) is None  # alone
