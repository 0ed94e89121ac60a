"""A JSON body loaded a slice at a time: what ``json.loads`` returns, with pauses while long arrays are decoded.

A snapshot body is one object whose ``bids`` and ``asks`` are arrays of a thousand levels or more (Bitstamp's is
the whole book). ``json.loads`` decodes it in one go: ~0.3 ms for 1,000 levels a side on this project's 2-core
machine, two or three times that on a busy hub, during which no reader, stream or timer runs (the largest hold the
drift audits left on the hub at 500 symbols, after their parse was sliced). Here the top-level object is walked
key by key, and each array value a slice at a time, pausing every :data:`~orderbook.exchanges.messages.PAUSE_EVERY`
elements: the first slice element by element with the decoder ``json.loads`` itself uses (its scanner); the
rest of an array of arrays (a book's levels) by slices about as long, each cut between two of its arrays and
decoded by ``json.loads`` in one call.

The answer is always ``json.loads``'s: a body that is not an object of that shape, or that the walk cannot read
(malformed, a trailing comma, extra data), is handed to ``json.loads`` whole,
which returns what it returns or raises what it raises. The walk costs about 1.7 times the CPU of ``json.loads``
(0.39 ms for 2,000 levels against 0.23; element by element throughout it took 0.83), paid only by the snapshots
that pause (not the frames).
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections.abc import Callable
from typing import Any

WHITESPACE = re.compile(r"[ \t\n\r]*")
"""JSON's whitespace, as ``json.decoder`` skips it."""
SPACES = " \t\n\r"
BETWEEN_ARRAYS = re.compile(r"\][ \t\n\r]*,[ \t\n\r]*\[")
"""Where an array ends and, after a comma, the next begins: between two levels of a book."""
ARRAY_ENDS = re.compile(r"\][ \t\n\r]*\]")
"""An array that is the last element of an array (a book's last level)."""
_SCAN = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # the stub wants a duck-typed context
"""Decodes the value at an index of a text: the scanner ``json.loads`` uses, with its settings."""


def loads_pausing(raw: bytes, pause: Callable[[], None], every: int) -> Any:
    """``json.loads(raw)``, calling ``pause()`` after every ``every`` elements of an array that is a value of the
    top-level object. Raises what ``json.loads`` raises (``ValueError``, ``RecursionError``)."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        return _walk(text, pause, every)
    except (ValueError, StopIteration, IndexError, RecursionError):
        return json.loads(raw)


def _walk(text: str, pause: Callable[[], None], every: int) -> dict[str, Any]:
    """The object in ``text``; raises (ValueError, StopIteration, IndexError) where the walk cannot go on."""
    scan = _SCAN
    i = _skip(text, 0)
    if text[i] != "{":
        raise ValueError("not an object")
    i = _skip(text, i + 1)
    result: dict[str, Any] = {}
    if text[i] == "}":
        return _end(result, text, i + 1)
    while True:
        if text[i] != '"':
            raise ValueError("not a key")
        key, i = scan(text, i)
        i = _skip(text, i)
        if text[i] != ":":
            raise ValueError("no colon")
        i = _skip(text, i + 1)
        if text[i] == "[":
            value, i = _array(text, i + 1, pause, every)
        else:
            value, i = scan(text, i)
        result[key] = value
        i = _skip(text, i)
        separator = text[i]
        i = _skip(text, i + 1)
        if separator == "}":
            return _end(result, text, i)
        if separator != ",":
            raise ValueError("no comma")


def _array(text: str, i: int, pause: Callable[[], None], every: int) -> tuple[list[Any], int]:
    """The array whose ``[`` was just before ``i``, and where it ends. Its first ``every`` elements are decoded one
    at a time; if they are arrays (a book's levels), the rest goes by slices of about as many characters, each
    decoded by ``json.loads`` in one call and cut where one element ends and the next begins (:func:`_slice`); the
    last few, and every element of an array of anything else, one at a time."""
    items: list[Any] = []
    i = _skip(text, i)
    if text[i] == "]":
        return items, i + 1
    sliced = text[i] == "["
    while True:
        start = i
        i, ended = _elements(text, i, every, items)
        if ended:
            return items, i
        pause()
        span = i - start  # the last element's "]" starts an element's length short of this after as many again
        while sliced and (cut := _slice(text, i, i + span - span // every)) is not None:
            try:
                items += json.loads(f"[{text[i:cut.start() + 1]}]")
            except (ValueError, RecursionError):
                break  # not cut between two of its elements: the rest one at a time
            i = cut.end() - 1
            pause()
        sliced = False


def _elements(text: str, i: int, count: int, items: list[Any]) -> tuple[int, bool]:
    """Decode up to ``count`` elements of an array from ``i`` (an element's start) onto ``items``: where the next
    element starts, or where the array has ended (then True)."""
    scan = _SCAN
    for _ in range(count):
        value, i = scan(text, i)
        items.append(value)
        i = _skip(text, i)
        separator = text[i]
        if separator == "]":
            return i + 1, True
        if separator != ",":
            raise ValueError("no comma")
        i = _skip(text, i + 1)
    return i, False


def _slice(text: str, i: int, at: int) -> re.Match[str] | None:
    """Where to cut the elements from ``i`` on (an array's element that is an array): the first ``],[`` from ``at``
    on, after one of its elements; None where none is found before the array ends. A cut inside a string, inside
    an element, or past the array's end (an array whose last element is not an array) leaves a slice that is not
    JSON (its brackets or quotes do not close, or something follows them), which ``json.loads`` refuses: the
    rest of the array is then decoded one element at a time."""
    cut = BETWEEN_ARRAYS.search(text, at)
    if cut is None or ARRAY_ENDS.search(text, i, cut.start() + 1) is not None:
        return None
    return cut


def _end(result: dict[str, Any], text: str, i: int) -> dict[str, Any]:
    if _skip(text, i) != len(text):
        raise ValueError("extra data")
    return result


def _skip(text: str, i: int) -> int:
    """Where the whitespace from ``i`` on ends (``i`` itself, most often: compact bodies have none)."""
    if i < len(text) and text[i] in SPACES:
        return WHITESPACE.match(text, i).end()  # type: ignore[union-attr]  # "*" matches everywhere
    return i
