"""When the venues send, as the recordings show it: the timing the simulator's many-symbol feeds are to follow.

Binance's ``@depth@100ms`` frames of different symbols come on one common 100-ms beat: whenever two symbols'
frames are within 50 ms of each other, they carry the same event time (``E``, within 1 ms), and they are received
together, one burst a beat (docs/protocols.md, "When frames come"). Bitstamp's diffs come when its orders change,
each pair on its own. Measured on every capture of ``recordings/`` with more than one symbol: 100% of such Binance
neighbours on the same millisecond, against 7-10% for Bitstamp's (about what independent times give).
"""

from __future__ import annotations

import json
from collections import defaultdict
from statistics import median

import pytest

from tests.recordings import DataSet, data_sets
from tests.support.beats import same_time_share


def _captures(exchange: str) -> dict[str, list[DataSet]]:
    """The data sets of each capture (tag) with more than one symbol: frames captured together."""
    by_tag: dict[str, list[DataSet]] = defaultdict(list)
    for data_set in data_sets(exchange):
        by_tag[data_set.name.partition("_")[0]].append(data_set)
    return {tag: sets for tag, sets in sorted(by_tag.items()) if len(sets) > 1}


def _event_ms(data_set: DataSet) -> list[tuple[int, float]]:
    """(the venue's event time in ms, the local receive time in s) of each frame."""
    events = []
    for frame, received in zip(data_set.frames, data_set.recv_ts):
        data = json.loads(frame).get("data")
        if data_set.exchange == "binance":
            events.append((data["E"], received))
        elif type(data) is dict and "microtimestamp" in data:
            events.append((int(data["microtimestamp"]) // 1000, received))
    return events


def _same_time_share(sets: list[DataSet]) -> tuple[int, float]:
    return same_time_share({data_set.symbol: [ms for ms, _ in _event_ms(data_set)] for data_set in sets})


@pytest.mark.parametrize("tag", sorted(_captures("binance")))
def test_binance_symbols_send_on_one_common_100ms_beat(tag: str) -> None:
    near, share = _same_time_share(_captures("binance")[tag])
    assert near >= 30, f"{tag}: too few neighbouring frames ({near}) to say anything"
    assert share == 1.0, f"{tag}: {share:.1%} of neighbouring frames of different symbols share their event time"


@pytest.mark.parametrize("tag", sorted(_captures("binance")))
def test_binance_frames_of_one_beat_arrive_together(tag: str) -> None:
    """The frames of one beat (one event time) of several symbols: received within a few ms of each other, one
    burst (first to last: 0.14-0.77 ms at the median, 0.45-3.4 ms at p90 in these captures; a few beats, under 5%
    of any capture's, had frames up to 1.8 s apart)."""
    received_by_beat: dict[int, list[float]] = defaultdict(list)
    for data_set in _captures("binance")[tag]:
        for ms, received in _event_ms(data_set):
            received_by_beat[ms].append(received)
    spreads = sorted((max(times) - min(times)) * 1000 for times in received_by_beat.values() if len(times) > 1)
    assert len(spreads) >= 10, f"{tag}: {len(spreads)} beats with frames of two symbols: too few to say anything"
    p90 = spreads[int(0.9 * len(spreads))]
    assert median(spreads) < 1.0 and p90 < 5.0, (
        f"{tag}: a beat's frames received over {median(spreads):.2f} ms at the median, {p90:.2f} ms at p90")


@pytest.mark.parametrize("tag", sorted(_captures("bitstamp")))
def test_bitstamp_pairs_send_each_on_its_own(tag: str) -> None:
    """The contrast that shows the test above measures the venue, not the recorder: Bitstamp's pairs, captured the
    same way, share a millisecond with their neighbours about as often as independent times would."""
    near, share = _same_time_share(_captures("bitstamp")[tag])
    assert near >= 30, f"{tag}: too few neighbouring frames ({near}) to say anything"
    assert share < 0.2, f"{tag}: {share:.1%} of neighbouring diffs of different pairs share their time"
