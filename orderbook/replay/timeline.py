"""What ``bin/replay`` serves, read once from a ``--record`` directory: each venue's recorded data frames in their
recorded batches (one per ``FRAMES`` record), each tagged with its symbol, and each venue's recorded REST answers;
in recorded order with them, the moments a venue ended a connection (:class:`Drop`) and the moments a snapshot was
answered (:class:`Asked`), which the replay plays out on the service it serves.

A frame is served once per symbol: a Binance diff by its last update id ``u``, a Bitstamp diff by its
``microtimestamp``, so a frame read on two connections at a hand-over is served once (as the simulator's replay
does, :mod:`orderbook.simulator.replay`). Frames that are not a symbol's diff (subscription answers, notices) are
not served: the replay answers subscriptions itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from orderbook.recording.format import FormatError, Kind, Record, unpack_frames
from orderbook.recording.reader import read_directory

VENUES = ("binance", "bitstamp")
TAKEN_SINCE = 3
"""The recording format version that says when the service was done with each snapshot answer."""
BITSTAMP_DIFF = "diff_order_book_"


class TimelineError(ValueError):
    """A recording that cannot be replayed (one line)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Frames one venue connection received together: sent together, at the moment the first was received."""

    time_ns: int
    venue: str
    frames: list[tuple[str, bytes]]
    """(symbol, payload as received)."""


@dataclass(frozen=True, slots=True)
class Drop:
    """The venue ended the recorded connection (a disconnect, silence, a frame too large): the replay drops the
    venue's connections here and goes on once the service has subscribed again."""

    time_ns: int
    venue: str


@dataclass(frozen=True, slots=True)
class Asked:
    """A snapshot answered: the replay goes past this moment once the service has asked for it as often as the
    recorded service had by then (``count``), or after a while. At the moment the recorded service was done with
    the answer where the recording says it (:attr:`taken`), else at the moment it was received."""

    time_ns: int
    venue: str
    request: tuple[str, str]
    """:func:`request_key` of the request."""
    count: int
    taken: bool = False
    """Whether the recorded service said when it was done with the answer (a ``TAKEN`` record, format version 3):
    the event is then at that moment, after what it read meanwhile, and a lockstep replay waits until the service it
    replays to is done with it too (``orderbook_snapshots_taken_total``)."""


Event = Batch | Drop | Asked
VENUE_ENDED = ("disconnect", "silence", "too_large")
"""A ``CLOSED`` record's reasons that were the venue's doing (``closed`` was the service's)."""
SNAPSHOT_PATHS = ("/api/v3/depth", "/api/v2/order_book/")


@dataclass(frozen=True, slots=True)
class Answer:
    """A REST answer as recorded: received at ``time_ns`` for ``path`` asked with ``query``."""

    time_ns: int
    path: str
    query: dict[str, str]
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Timeline:
    symbols: list[str]
    events: list[Event]
    answers: dict[str, list[Answer]]
    """Per venue, in the order received."""
    published: list[int]
    """Per event, the summaries of the replayed symbols the recorded service published after it and before the
    next event, or before it began to stop (``--record-summaries``; all 0 without): what a lockstep replay waits
    for."""

    def asks(self, venue: str) -> dict[tuple[str, str], int]:
        """How many times the recorded service asked each of ``venue``'s snapshot requests (from ``--from``)."""
        counts: dict[tuple[str, str], int] = {}
        for event in self.events:
            if isinstance(event, Asked) and event.venue == venue:
                counts[event.request] = max(counts.get(event.request, 0), event.count)
        return counts


def diff_of(venue: str, payload: bytes) -> tuple[str, int] | None:
    """(symbol, update id or microtimestamp) of a venue's diff frame; None for any other frame."""
    try:
        frame = json.loads(payload)
    except ValueError:
        return None  # a frame the venue garbled: not a diff
    if not isinstance(frame, dict):
        return None
    if venue == "binance":
        event = frame.get("data", frame)
        if isinstance(event, dict) and event.get("e") == "depthUpdate" and isinstance(event.get("u"), int):
            return str(event.get("s")), event["u"]
        return None
    data, channel = frame.get("data"), frame.get("channel")
    if frame.get("event") != "data" or not isinstance(channel, str) or not channel.startswith(BITSTAMP_DIFF) \
            or not isinstance(data, dict):
        return None
    try:
        return channel.removeprefix(BITSTAMP_DIFF).upper(), int(data["microtimestamp"])
    except (KeyError, TypeError, ValueError):
        return None


def load_timeline(directory: Path, symbols: list[str] | None, from_ns: int | None, to_ns: int | None,
                  on_problem: Callable[[str], None]) -> Timeline:
    """Raises :class:`TimelineError`, :class:`~orderbook.recording.format.FormatError`."""
    records = read_directory(directory, on_problem, packed=True)
    first = next(records, None)
    chosen = _chosen(directory, first, symbols)
    assert first is not None
    venue_of: dict[int, str] = {}
    last: dict[tuple[str, str], int] = {}
    events: list[Event] = []
    published: list[int] = []
    answers: dict[str, list[Answer]] = {venue: [] for venue in VENUES}
    asks = _Asks(int(first.meta.get("version", 1)) >= TAKEN_SINCE)
    stopped = False
    for record in records:
        played = (from_ns is None or record.time_ns >= from_ns) and (to_ns is None or record.time_ns <= to_ns)
        event: Event | None = None
        if record.kind is Kind.OPENED and record.meta.get("venue") in VENUES:
            venue_of[record.connection] = str(record.meta["venue"])
        elif record.kind is Kind.HTTP and record.meta.get("venue") in VENUES and record.meta.get("status"):
            venue, answer = str(record.meta["venue"]), _answer(record)
            answers[venue].append(answer)
            if played and answer.path.startswith(SNAPSHOT_PATHS) and _symbol_of(venue, answer) in chosen:
                event = asks.received(record, venue, answer)
        elif record.kind is Kind.TAKEN:
            event = asks.taken(record)
        elif record.kind is Kind.CLOSED and record.connection in venue_of and played \
                and record.meta.get("reason") in VENUE_ENDED:
            event = Drop(record.time_ns, venue_of[record.connection])
        elif record.kind in (Kind.FRAMES, Kind.FRAME) and record.connection in venue_of and played:
            batch = _batch(record, venue_of[record.connection], set(chosen), last)
            event = batch if batch.frames else None
        elif record.kind is Kind.SUMMARY and played and published and not stopped \
                and record.meta.get("symbol") in chosen:
            published[-1] += 1
        elif record.kind is Kind.STOPPING:
            stopped = True  # what the service published from here on was its stop's, not the venues' doing
        if event is not None:
            events.append(event)
            published.append(0)
    for event in asks.never_taken():  # the recorded service stopped first
        events.append(event)
        published.append(0)
    if not any(isinstance(event, Batch) for event in events):
        raise TimelineError(f"{directory}: no frames of {', '.join(chosen)} recorded"
                            + (" between --from and --to" if from_ns is not None or to_ns is not None else ""))
    return Timeline(chosen, events, answers, published)


def _chosen(directory: Path, first: Record | None, symbols: list[str] | None) -> list[str]:
    """The symbols replayed: ``symbols``, or all recorded; ``first`` the recording's first record."""
    if first is None:
        raise TimelineError(f"{directory}: no record can be read")
    if first.kind is not Kind.START:
        raise TimelineError(f"{directory}: the recording does not begin with its start record")
    recorded = [str(symbol) for symbol in first.meta.get("symbols", [])]
    for symbol in symbols or []:
        if symbol not in recorded:
            raise TimelineError(f"--symbol {symbol}: not recorded (the recording follows {', '.join(recorded)})")
    return symbols or recorded


class _Asks:
    """The snapshot answers replayed, as :class:`Asked` events: each at the moment it was received, or in a
    recording that says so (``says_taken``), at the moment the recorded service was done with it."""

    def __init__(self, says_taken: bool) -> None:
        self._says_taken = says_taken
        self._counts: dict[tuple[str, tuple[str, str]], int] = {}
        self._taking: dict[tuple[str, str], list[Asked]] = {}
        """Per venue and URL, the answers received and not done with yet, in the order received."""

    def received(self, record: Record, venue: str, answer: Answer) -> Asked | None:
        """The event of the answer ``record`` of ``venue``'s, or None when it comes with its ``TAKEN`` record."""
        key = (venue, request_key(answer.path, answer.query))
        self._counts[key] = count = self._counts.get(key, 0) + 1  # from --from: the replayed service asks from there
        event = Asked(record.time_ns, venue, key[1], count)
        if not self._says_taken:
            return event
        self._taking.setdefault((venue, str(record.meta.get("url"))), []).append(event)
        return None

    def taken(self, record: Record) -> Asked | None:
        """The event of the answer the ``TAKEN`` record says the service was done with (None: not replayed)."""
        waiting = self._taking.get((str(record.meta.get("venue")), str(record.meta.get("url"))))
        return replace(waiting.pop(0), time_ns=record.time_ns, taken=True) if waiting else None

    def never_taken(self) -> list[Asked]:
        """The answers received that the recorded service was never done with, in the order received."""
        return sorted((event for waiting in self._taking.values() for event in waiting),
                      key=lambda event: event.time_ns)


def _answer(record: Record) -> Answer:
    url = urlsplit(str(record.meta.get("url", "")))
    return Answer(record.time_ns, url.path, dict(parse_qsl(url.query)), int(record.meta["status"]), record.body)


def request_key(path: str, query: dict[str, str]) -> tuple[str, str]:
    """What tells two requests apart: the path and the query, in order of names."""
    return path.rstrip("/"), "&".join(f"{name}={value}" for name, value in sorted(query.items()))


def _symbol_of(venue: str, answer: Answer) -> str:
    """The symbol a snapshot answer is of (Binance: its ``symbol``; Bitstamp: the pair in its path)."""
    if venue == "binance":
        return answer.query.get("symbol", "")
    return answer.path.rstrip("/").rsplit("/", 1)[-1].upper()


def _batch(record: Record, venue: str, symbols: set[str], last: dict[tuple[str, str], int]) -> Batch:
    try:
        frames = unpack_frames(record) if record.kind is Kind.FRAMES else [record]
    except FormatError:
        return Batch(record.time_ns, venue, [])  # the reader checked the block: a record that does not unpack
    served: list[tuple[str, bytes]] = []
    for frame in frames:
        diff = diff_of(venue, frame.body)
        if diff is None or diff[0] not in symbols:
            continue
        symbol, key = diff
        if key <= last.get((venue, symbol), -1):
            continue  # read on two connections at a hand-over: served once
        last[(venue, symbol)] = key
        served.append((symbol, frame.body))
    return Batch(record.time_ns, venue, served)


def answer_at(answers: list[Answer], path: str, query: dict[str, str], position_ns: int) -> Answer | None:
    """The latest answer recorded at or before ``position_ns`` for ``path`` (and the same ``symbol``; the same
    query if any was asked so), else the first; None when none was recorded."""
    same_path = [answer for answer in answers if answer.path.rstrip("/") == path.rstrip("/")
                 and answer.query.get("symbol") == query.get("symbol")]
    candidates = [answer for answer in same_path if answer.query == query] or same_path
    if not candidates:
        return None
    before = [answer for answer in candidates if answer.time_ns <= position_ns]
    return before[-1] if before else candidates[0]
