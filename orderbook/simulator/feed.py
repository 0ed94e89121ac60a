"""What drives a venue's book forward in time: the seeded model at a set rate, or a recording at its pace.

The model feed wakes every couple of milliseconds and publishes the number of events due since its last wake,
so rates from 1 to tens of thousands of events per second come out right without a timer per event. Both feeds
honour the shared pause: while paused nothing is published and the true books stay frozen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import partial

import gevent
from gevent.event import Event

from orderbook.simulator.exchange import Exchange, now_ms
from orderbook.simulator.market import VenueModel
from orderbook.simulator.probe import ProbeLog
from orderbook.simulator.replay import Recording

logger = logging.getLogger(__name__)

SLICE_SECONDS = 0.002
MAX_BURST_SECONDS = 0.05
"""After a stall, catch up at most this much time's worth of events at once (the rate is best effort)."""
REPLAY_MAX_BATCH = 200
"""At ``max`` replay speed, yield to other greenlets after this many frames."""
BURST_YIELD_EVENTS = 1_000
"""A burst lets the other greenlets run after this many events (about 16 ms of model steps here)."""
BURST_YIELD_SECONDS = 0.0001
"""A timer, however short, not ``sleep(0)``: that only queues a callback, and the hub runs up to 50 callbacks before
it polls sockets and timers again (50 x 16 ms of steps: the keep-alive woke 0.2-0.35 s late); a timer is a full turn
of the loop."""


class Pause:
    """The shared pause switch (``POST /pause``, ``POST /resume``)."""

    def __init__(self, paused: bool = False) -> None:
        self._running = Event()
        if not paused:
            self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def wait(self) -> float:
        """Block while paused; return how long that was."""
        if self._running.is_set():
            return 0.0
        started = time.monotonic()
        self._running.wait()
        return time.monotonic() - started


class _Driver:
    """Runs ``_run`` in its own greenlet between start() and stop()."""

    _greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()

    def _run(self) -> None:
        raise NotImplementedError


class ModelFeed(_Driver):
    """Steps one venue's markets, each at ``rate`` events per second, in one greenlet.

    ``exchange`` and ``model`` are the default symbol's market (the one probes mark); ``others`` the venue's other
    symbols'. One greenlet for all of them, not one each: a hundred symbols cost one wake per slice, not a hundred.
    The default symbol's event comes last of its slice, so that a probe stays the last event of its batch: nothing
    queued after it delays its write.

    When the others' events go out is the venue's (docs/protocols.md, "When frames come"). ``beat`` None (Bitstamp,
    whose pairs send when their orders change, each on its own): they take turns, evenly spread over each 1 /
    ``rate`` seconds. ``beat`` set (Binance, whose ``@depth@100ms`` streams all send on one common 100-ms beat): a
    slice is a beat, kept to a grid; every symbol's events due in it go out together at its start, the others in
    their turns and the default symbol last (the last place of the burst, the longest a symbol waits behind the
    others), all with the beat's event time (:attr:`Exchange.beat_ms`). That is while the rate is at most one event a
    beat (10 a second: Binance's realistic rate). Faster, and with no other symbol, the events stay spread over 2-ms
    slices: the venue would merge a symbol's events of a beat into one frame where the simulator sends a frame an
    event, so such a rate is a load, not the venue, and bunching it into beats would measure the bunching (held a
    beat at a time, the overload benchmark's push, 1,600 events a second a symbol, cost the book process two
    reconnects in the one run tried, where spread it has none).
    """

    def __init__(self, exchange: Exchange, model: VenueModel, rate: float, pause: Pause,
                 probes: ProbeLog | None = None, others: Sequence[tuple[Exchange, VenueModel]] = (),
                 beat: float | None = None) -> None:
        self.exchange = exchange
        self.model = model
        self.others = list(others)
        self.rate = rate
        self.venue_beat = beat if self.others else None
        """Seconds between the venue's common sends, when there are several symbols (None: each on its own)."""
        self.probes = probes or ProbeLog()
        self._pause = pause
        self._since_probe = 0
        self._bursts = 0
        """Bursts being queued: the paused market's periodic flush waits for them (Binance's 1000 ms frame)."""

    @property
    def beat(self) -> float | None:
        """The beat the events go out on now: the venue's, at most one event a beat (the rate can change)."""
        beat = self.venue_beat
        return beat if beat is not None and self.rate * beat <= 1.0 + 1e-9 else None

    def _run(self) -> None:
        exchange, model = self.exchange, self.model
        exchanges = [other for other, _ in self.others] + [exchange]
        others = [(other.publish, other_model.step) for other, other_model in self.others]
        turns = 0.0  # the other symbols' events so far, in turn: rate * len(others) a second
        last = time.monotonic()
        carry = 0.0
        beat_at = last  # with a beat: when the next is due, on a grid of beats, not a beat after the last wake
        while True:
            beat = self.beat
            if beat is None:
                gevent.sleep(SLICE_SECONDS)
            else:
                # On the grid, but never within 60% of a beat of the last one's send: a beat the hub woke late
                # (a busy machine) does not bring the next close behind it, two beats' frames as good as one.
                beat_at = max(beat_at + beat, time.monotonic() + 0.6 * beat)
                gevent.sleep(max(0.0, beat_at - time.monotonic()))
            now = time.monotonic()
            if self._pause.paused:
                last, carry = now, 0.0
                if not self._bursts:
                    for each in exchanges:
                        each.flush(now)
                continue
            due = carry + self.rate * (now - last)
            count = int(due)
            carry = due - count
            burst = max(1, int(self.rate * max(MAX_BURST_SECONDS, beat or 0.0)))
            if count > burst:
                count, carry = burst, 0.0
            if beat is not None:
                exchange.beat_ms = now_ms()  # every frame of the beat, the others' and the default's, alike
            if others:
                first = int(turns)
                turns += self.rate * (now - last) * len(others)
                if int(turns) - first > burst * len(others):
                    turns = float(first + burst * len(others))
                for turn in range(first, int(turns)):
                    publish, step = others[turn % len(others)]
                    publish(step())
            last = now
            self._since_probe += count
            probe = count > 0 and 0 < self.probes.every <= self._since_probe
            for _ in range(count - 1 if probe else count):
                exchange.publish(model.step())
            if probe:
                self._publish_probe()
            for each in exchanges:
                each.flush(now)
            exchange.beat_ms = None

    def burst(self, events: int) -> float:
        """``events`` events queued at once, the last a probe: a client that shows its marker has them all (as far as
        the top it sees can say). Returns when they were queued: their writing starts then.

        Stepping the model takes seconds for a large burst (about 60,000 events a second here): the hub gets a turn
        every :data:`BURST_YIELD_EVENTS` events, so that the venue's keep-alive pings, its readers (pongs) and the
        control API go on meanwhile, and the venue's connections hold their data frames (:meth:`WebSocket.hold`)
        until the last event is queued, so that what is sent, in what order, and when its writing starts are as if
        every event were queued in one go. (Stepping 300,000 events without a turn froze the simulator for 5 s: its
        keep-alive woke 4 s late.)"""
        exchange, step = self.exchange, self.model.step
        held = [session.ws for session in exchange.venue.sessions]
        for ws in held:
            ws.hold()
        self._bursts += 1
        try:
            for index in range(1, events):
                exchange.publish(step())
                if index % BURST_YIELD_EVENTS == 0:
                    gevent.sleep(BURST_YIELD_SECONDS)
            self._publish_probe()
            queued_at = time.monotonic()
            exchange.flush(queued_at)
        finally:
            self._bursts -= 1
            for ws in held:
                ws.release()
        return queued_at

    def _publish_probe(self) -> None:
        """A probe event, always the last of its batch so that nothing queued after it delays its write."""
        self._since_probe = 0
        key, lots = self.probes.new_marker()
        change = self.model.mark_best_bid(lots)
        self.probes.record(key, self.exchange.name, time.monotonic())
        with self.exchange.tracing(partial(self.probes.written, key)):
            self.exchange.publish(change)


class ReplayFeed(_Driver):
    """Serves a recording's frames once, at the recorded pace (receive-time gaps) or as fast as possible."""

    def __init__(self, exchange: Exchange, recording: Recording, speed: str, pause: Pause) -> None:
        self.exchange = exchange
        self.recording = recording
        self.speed = speed
        self.rate = 0.0
        self.finished = Event()
        self._pause = pause

    def _run(self) -> None:
        frames = self.recording.frames
        publish = self.exchange.publish_recorded
        self._pause.wait()
        start = time.monotonic()
        first_ts = frames[0][0] if frames else 0.0
        for index, (ts, payload) in enumerate(frames):
            if self.speed == "recorded":
                while (delay := start + ts - first_ts - time.monotonic()) > 0:
                    gevent.sleep(min(delay, 0.05))
                    start += self._pause.wait()
            elif index % REPLAY_MAX_BATCH == 0:
                gevent.sleep(0)
            start += self._pause.wait()
            publish(payload)
            self.exchange.flush(time.monotonic())
        logger.info("%s: replay finished after %d frames; the book stays as it is", self.exchange.name, len(frames))
        self.finished.set()
        while True:  # let periodic frames (Binance's 1000 ms stream) drain
            gevent.sleep(0.1)
            self.exchange.flush(time.monotonic())
