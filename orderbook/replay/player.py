"""``bin/replay DIR [--speed X | --max-speed] [--from TIME] [--to TIME] [--symbol S,...] [--binance-port N]
[--bitstamp-port N]``: serve a recording (``bin/run-server --record DIR``) as both venues over the simulator's wire,
so a ``bin/run-server`` pointed at the printed URLs rebuilds the books it had live.

The venues' base URLs are printed on stdout as one JSON line (as ``bin/exchange-sim`` prints them). Streaming
starts once the service has subscribed to every replayed symbol on both venues that have frames of it; each
recorded batch of frames is then sent at its recorded moment (scaled by ``--speed``; ``--max-speed``: as fast as
the connections take them), a REST request answered with the latest answer recorded at or before the replay's
position. A connection the venue ended is ended at that moment (then the service's new subscriptions awaited), and
a recorded snapshot answer is not passed until the service has asked for it (:class:`Player`). Progress goes to
stderr every second; once played out, one line, and the listeners stay open ``$ORDERBOOK_REPLAY_LINGER`` seconds
(default 5) or until SIGINT/SIGTERM; both stop it with exit code 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import gevent
from gevent.event import Event

from orderbook.arguments import OneLineParser, UsageError, positive_number
from orderbook.recording.format import FormatError
from orderbook.replay.command import EXIT_OK, problem_line, refused
from orderbook.replay.lockstep import Lockstep
from orderbook.replay.moment import NS, format_moment, parse_moment
from orderbook.replay.timeline import VENUES, Asked, Batch, Drop, Timeline, TimelineError, load_timeline
from orderbook.replay.venue import ReplayedVenue
from orderbook.symbol_state import canonical_symbol

PROG = "replay"
PROGRESS_EVERY = 1.0
MAX_QUEUED_BYTES = 1 << 20
"""At --max-speed, wait while a connection has this much not yet written (the wire drops a client past 64 MiB)."""
LINGER_ENV = "ORDERBOOK_REPLAY_LINGER"
ASK_WAIT = 2.0
"""How long a recorded snapshot answer waits for the service to ask for it (a drift audit the service does not
run, a retry it does not need) before the replay goes on without it."""


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port (0-65535), got {text!r}")
    return int(text)


def _symbols(text: str) -> list[str]:
    symbols = [canonical_symbol(part) for part in text.split(",") if part.strip()]
    if not symbols:
        raise argparse.ArgumentTypeError(f"expected symbols separated by commas, got {text!r}")
    return symbols


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description="Serve a recording (bin/run-server --record DIR) as both venues, "
                           "for a bin/run-server pointed at the printed URLs.")
    parser.add_argument("directory", metavar="DIR", help="the recording")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=positive_number, default=1.0, metavar="X",
                      help="the recorded pace times X (default 1)")
    pace.add_argument("--max-speed", action="store_true", help="no pacing: as fast as the connections take it")
    moment = "ISO 8601 (2026-12-03T14:03:07.250Z) or Unix seconds (1796306587.25)"
    parser.add_argument("--from", dest="from_ns", type=parse_moment, metavar="TIME",
                        help=f"replay frames received from TIME: {moment}")
    parser.add_argument("--to", dest="to_ns", type=parse_moment, metavar="TIME",
                        help=f"replay frames received until TIME: {moment}")
    parser.add_argument("--symbol", type=_symbols, metavar="S,...", help="these symbols only (default: all recorded)")
    parser.add_argument("--lockstep", metavar="METRICS_URL",
                        help="play each event once the service (its /metrics at METRICS_URL; following the replayed "
                             "symbols, all of them read, as with --record-summaries) has done with the one before, "
                             "so that it publishes the recorded summaries")
    parser.add_argument("--binance-port", type=_port, default=0, metavar="N", help="default: a free port")
    parser.add_argument("--bitstamp-port", type=_port, default=0, metavar="N", help="default: a free port")
    args = parser.parse_args(argv)
    if args.from_ns is not None and args.to_ns is not None and args.to_ns < args.from_ns:
        raise UsageError("--to", "before --from")
    return args


def _linger() -> float:
    text = os.environ.get(LINGER_ENV, "5")
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise UsageError(LINGER_ENV, f"expected seconds (0 or more), got {text!r}")
    return seconds


class Player:
    """Plays a timeline's events on the venues at their recorded moments, scaled by ``speed`` (None: no pacing):
    a batch sent to its symbols' subscribers, a drop played on the venue (then the service's new subscriptions
    awaited), a snapshot answered not passed until the service asked for it (at most :data:`ASK_WAIT` s).
    ``position_ns`` is the recorded moment reached; a wait for the service does not count as recorded time. With a
    :class:`~orderbook.replay.lockstep.Lockstep`, each event also waits for the service to be done with the one
    before."""

    def __init__(self, timeline: Timeline, venues: dict[str, ReplayedVenue], speed: float | None,
                 stopping: Event, lockstep: Lockstep | None = None) -> None:
        self._timeline = timeline
        self._lockstep = lockstep
        self._venues = venues
        self._speed = speed
        self._stopping = stopping
        self._wanted = {(event.venue, symbol) for event in timeline.events if isinstance(event, Batch)
                        for symbol, _ in event.frames}
        self._not_asked: dict[tuple[str, tuple[str, str]], int] = {}
        """Per venue and request, the recorded asks the service did not repeat (it was not waited for again)."""
        self.position_ns = timeline.events[0].time_ns
        self.frames_sent = 0
        self.waits = 0

    def wait_for_subscriptions(self, venues: Sequence[str] = VENUES) -> bool:
        said = False
        while not self._stopping.is_set():
            missing = sorted(f"{venue} {symbol}" for venue, symbol in self._wanted
                             if venue in venues and not self._venues[venue].subscribers(symbol))
            if not missing:
                return True
            if not said:
                print(f"{PROG}: waiting for the service to subscribe ({', '.join(missing)})", file=sys.stderr,
                      flush=True)
                said = True
            self._stopping.wait(0.01)
        return False

    def play(self) -> bool:
        """True when played out, False when stopped first."""
        lockstep = self._lockstep
        if lockstep is not None:
            lockstep.begin()
        anchor_ns, anchor = self.position_ns, time.monotonic()
        for event, published in zip(self._timeline.events, self._timeline.published, strict=True):
            if self._speed is not None:
                delay = anchor + (event.time_ns - anchor_ns) / NS / self._speed - time.monotonic()
                if delay > 0 and self._stopping.wait(delay):
                    return False
            if self._stopping.is_set():
                return False
            self.position_ns = max(self.position_ns, event.time_ns)
            venue = self._venues[event.venue]
            if isinstance(event, Batch):
                self._send(venue, event)
                symbols = {symbol for symbol, _ in event.frames}
                if lockstep is not None and not lockstep.wait_read(venue, symbols, published):
                    return False
                continue
            if isinstance(event, Drop):
                venue.drop()
                waited = self.wait_for_subscriptions([event.venue])
                if lockstep is not None:
                    lockstep.expect(published)
            else:
                asked = self._wait_asked(venue, event)
                waited = asked is not None
                if asked is not None and lockstep is not None:
                    venue.release(event.request, event.count)
                    if asked and event.taken:
                        waited = self._wait_answered(venue, event) and lockstep.wait_taken(venue)
                    waited = waited and lockstep.wait_published(published)
            if not waited:
                return False
            anchor_ns, anchor = self.position_ns, time.monotonic()
        return True

    def _send(self, venue: ReplayedVenue, batch: Batch) -> None:
        while self._speed is None and venue.queued_bytes() > MAX_QUEUED_BYTES:
            if self._stopping.wait(0.001):
                return
        for symbol, payload in batch.frames:
            venue.send(symbol, payload)
        self.frames_sent += len(batch.frames)
        gevent.sleep(0)  # the writers run: a batch goes out as one write, as it came in

    def _wait_asked(self, venue: ReplayedVenue, asked: Asked) -> bool | None:
        """Wait until the service has asked for the recorded answer ``asked``: True when it has, False when it
        did not within :data:`ASK_WAIT` (now, or in an earlier wait for the same ask), None when stopped first."""
        key = (asked.venue, asked.request)
        give_up = time.monotonic() + ASK_WAIT
        while venue.asked.get(asked.request, 0) < asked.count:
            if venue.asked.get(asked.request, 0) + self._not_asked.get(key, 0) >= asked.count:
                return False
            if time.monotonic() >= give_up:
                self._not_asked[key] = asked.count - venue.asked.get(asked.request, 0)
                self.waits += 1
                return False
            if self._stopping.wait(0.002):
                return None
        return True

    def _wait_answered(self, venue: ReplayedVenue, asked: Asked) -> bool:
        """Wait until the released answer ``asked`` has gone to the service; False when stopped first."""
        while venue.answered.get(asked.request, 0) < asked.count:
            if self._stopping.wait(0.001):
                return False
        return True

    def progress(self) -> str:
        return f"at {format_moment(self.position_ns)}, {self.frames_sent} frames sent"


def _report(player: Player, stopping: Event) -> None:
    while not stopping.wait(PROGRESS_EVERY):
        print(f"{PROG}: {player.progress()}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        linger = _linger()
    except UsageError as error:
        return refused(PROG, error)
    try:
        timeline = load_timeline(Path(args.directory), args.symbol, args.from_ns, args.to_ns, problem_line(PROG))
    except (TimelineError, FormatError) as error:
        return refused(PROG, error)
    stopping = Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    player: Player
    venues = {name: ReplayedVenue(name, timeline.answers[name], lambda: player.position_ns,
                                  getattr(args, f"{name}_port")) for name in VENUES}
    lockstep = None if args.lockstep is None else Lockstep(args.lockstep, stopping, problem_line(PROG))
    if lockstep is not None:
        for venue in venues.values():
            venue.hold_asks(timeline.asks(venue.name))
    player = Player(timeline, venues, None if args.max_speed else args.speed, stopping, lockstep)
    try:
        for venue in venues.values():
            venue.server.start()
    except OSError as error:
        return refused(PROG, OSError(f"cannot listen: {error}"))
    urls = {f"{name}_{kind}": venue.server.url(scheme) for name, venue in venues.items()
            for kind, scheme in (("ws", "ws"), ("rest", "http"))}
    print(json.dumps(urls), flush=True)
    reporter = gevent.spawn(_report, player, stopping)
    try:
        if player.wait_for_subscriptions() and player.play():
            unasked = f"; {player.waits} recorded snapshot answers not asked for" if player.waits else ""
            lockstep_said = "" if lockstep is None else f"; {lockstep.outcome()}"
            print(f"{PROG}: played out: {player.frames_sent} frames of {', '.join(timeline.symbols)}, up to "
                  f"{format_moment(player.position_ns)}{unasked}{lockstep_said}", file=sys.stderr, flush=True)
            stopping.wait(linger)
    finally:
        stopping.set()
        reporter.kill()
        for venue in venues.values():
            venue.server.stop()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
