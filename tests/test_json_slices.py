"""A body loaded a slice at a time is what ``json.loads`` makes of it, whatever the body: the same value, or the
same error (the walk hands whatever it cannot read to ``json.loads``), with a pause between slices of every array
of the top-level object."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook.exchanges.json_slices import loads_pausing

FAST = settings(max_examples=300, deadline=None)

leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
values = st.recursive(leaves, lambda children: st.lists(children, max_size=5)
                      | st.dictionaries(st.text(max_size=5), children, max_size=5), max_leaves=12)
bodies = st.dictionaries(st.text(max_size=6), values | st.lists(values, max_size=12), max_size=4)
layouts = st.sampled_from([{}, {"indent": 2}, {"separators": (",", ":")}, {"indent": "\t"},
                           {"separators": (" , ", " : ")}, {"ensure_ascii": False}])


def outcome(load, raw: bytes):
    """What ``load`` makes of ``raw``: ("value", its JSON text) or ("error", the exception's type)."""
    try:
        return "value", repr(load(raw))  # repr: NaN is NaN, and key order counts
    except (ValueError, RecursionError) as error:
        return "error", type(error)


def paused(raw: bytes, every: int = 3) -> object:
    return loads_pausing(raw, lambda: None, every)


@FAST
@given(body=bodies, layout=layouts, padding=st.sampled_from(["", " ", "\n", " \r\n\t "]))
def test_any_object_loads_as_json_loads_does(body, layout, padding):
    raw = (padding + json.dumps(body, **layout) + padding).encode()
    assert outcome(paused, raw) == outcome(json.loads, raw) == ("value", repr(body))


@FAST
@given(body=bodies, layout=layouts, data=st.data())
def test_a_damaged_object_fails_or_loads_as_json_loads_does(body, layout, data):
    text = json.dumps(body, **layout)
    at = data.draw(st.integers(min_value=0, max_value=len(text)))
    damage = data.draw(st.sampled_from(["", ",", "]", "}", "[", "{", '"', ":", " ", "x", "1", "\x00"]))
    cut = data.draw(st.integers(min_value=0, max_value=2))
    raw = (text[:at] + damage + text[at + cut:]).encode()
    assert outcome(paused, raw) == outcome(json.loads, raw)


@FAST
@given(raw=st.binary() | st.text().map(str.encode) | st.sampled_from(
    [b"", b"{", b"{}", b'{"a":[1,]}', b'{"a":[1 2]}', b'{"a":1} x', b'{"a":1,}', b"[1,2]", b'{1:2}',
     b'\xef\xbb\xbf{"a":[1]}', b'{"a":NaN,"b":[Infinity,-Infinity]}', b'{"a":[[1,2],[3]],"a":3}',
     '{"a":["\u00e9"]}'.encode("utf-16"), b'{"a":[' + b"[" * 100_000 + b"]" * 100_000 + b"]}"]))
def test_any_bytes_load_or_fail_as_json_loads_does(raw):
    assert outcome(paused, raw) == outcome(json.loads, raw)


@pytest.mark.parametrize("every", [1, 7, 100])
def test_it_pauses_between_slices_of_each_array_and_nowhere_else(every):
    body = {"lastUpdateId": 12, "bids": [["0.05", "1"]] * 250, "asks": [], "note": "x", "one": [1]}
    calls = []
    assert loads_pausing(json.dumps(body).encode(), lambda: calls.append(1), every) == body
    assert len(calls) == (250 - 1) // every


@pytest.mark.parametrize("level", [["0.05", "1"], ["a],[b", "1"], ["x] ]", "],"], [["1", ["2"]], "]]"], [[], []],
                                   ["1", {"a": "],["}]])
@pytest.mark.parametrize("layout", [{}, {"separators": (",", ":")}, {"indent": 1}])
def test_levels_whose_strings_or_elements_look_like_a_cut_load_as_json_loads_does(level, layout):
    """The levels after the first slice go by slices cut between two arrays: a ``],[`` inside a string or inside a
    level is never taken for one (what json.loads makes of the body, whatever the cuts)."""
    body = {"lastUpdateId": 1, "bids": [level, ["0.04", "2"]] * 40, "asks": [["0.06", "3"]] * 30}
    raw = json.dumps(body, **layout).encode()
    assert outcome(paused, raw) == outcome(json.loads, raw) == ("value", repr(body))
