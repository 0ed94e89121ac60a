"""One connection to a venue, carrying a group of symbols: its supervisor and its reader.

Each session opens a stream through the transport boundary (:mod:`orderbook.stream`) and follows it: a reader
routes every frame to its symbol's :class:`~orderbook.feed.symbol.SymbolStream`, the frames already waiting together
(a :class:`~orderbook.feed.symbol.Batch`, each symbol they changed published once), while helpers subscribe the
symbols, paced to the venue's message rate, and keep the connection provably alive. The first of them to give a
reason ends the session (:class:`~orderbook.feed.settings.SessionEnd`): the reader's (the connection broke, or the
venue asks us to move), the age limit's, or a failed helper's. A connection that still works when its session ends
(the venue's request, the age limit) is replaced make-before-break: its books are served, by a drain reading on,
until the successor's are in step. Any other is closed. Either way every symbol on it is rebuilt on the next
connection, each served again as soon as it is in step.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gevent
from gevent.event import AsyncResult

from orderbook.backoff import Backoff
from orderbook.exchanges.base import Venue
from orderbook.exchanges.messages import BadMessage, BookDiff, Message, ReconnectRequest
from orderbook.feed.lag import FRESH_PROBE_INTERVAL, IDLE_CAUGHT_UP, ClockOffset, ConnectionLag
from orderbook.feed.settings import FeedSettings, SessionEnd
from orderbook.feed.symbol import Batch, SymbolFeed, SymbolStream
from orderbook.logs import LogThrottle
from orderbook.metrics import VenueMetrics
from orderbook.stream import Connector, ConnectFailed, FrameTooLarge, Stream, StreamError, StreamSilent

log = logging.getLogger(__name__)

RAW_EXCERPT = 200
BAD_FRAME_LOG_INTERVAL = 10.0
SESSION_END_REASONS = {FrameTooLarge: "bad_frame", StreamSilent: "silence"}
"""Why a stream error ended a session, for the metrics and the log; any other: ``disconnect``."""


class VenueConnection:
    """A supervisor: runs sessions on new connections until killed, each failed one followed by a backoff."""

    def __init__(
        self,
        venue: Venue,
        symbols: Sequence[SymbolFeed],
        *,
        connect: Connector,
        metrics: VenueMetrics,
        settings: FeedSettings,
        spawn: Callable[..., gevent.Greenlet],
        clock: ClockOffset | None = None,
        label: str = "",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock``: the venue's clock offset, shared by its connections (a new one if not given). ``wall_clock``:
        the time a frame's event time is measured against, for the lag (a recording's replay gives the recorded
        receive time)."""
        self.venue = venue
        self.symbols = {feed.symbol: feed for feed in symbols}
        self.name = f"{venue.name}{label}"
        self._connect = connect
        self._metrics = metrics
        self._stats = metrics.stats
        self._settings = settings
        self._spawn = spawn
        self._backoff = Backoff(settings.backoff_base, settings.backoff_cap)
        self._bad_frame_log = LogThrottle(BAD_FRAME_LOG_INTERVAL)
        self._clock = clock or ClockOffset()
        self._wall_clock = wall_clock

    # -- supervisor ------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Run sessions until killed (``GreenletExit``)."""
        while True:
            started = time.monotonic()
            end = self._session()
            self._metrics.reconnect(end.reason)
            if time.monotonic() - started >= self._settings.healthy_after:
                self._backoff.reset()
            # A connection that still works (the venue asked us to move, or it is too old) did not fail: go at once
            # (its books are served meanwhile).
            delay = 0.0 if end.connection_works else self._backoff.next()
            log.warning("%s: session ended (%s); reconnecting in %.1f s", self.name, end.reason, delay)
            gevent.sleep(delay)

    def new_streams(self) -> tuple[dict[str, SymbolStream], ConnectionLag, Batch]:
        """What a new session starts with: a fresh stream for every symbol the venue still lists, made current; the
        connection's lag, which takes them out of the merged book while it is past ``--max-lag`` (one log line an
        episode); and its batch, through which they publish."""
        streams: dict[str, SymbolStream] = {}

        def on_behind(behind: bool, lag: float) -> None:
            if behind:
                self._metrics.fell_behind()
                log.warning("%s: %.1f s behind the venue (bound %g s): its %d books are not served until it "
                            "catches up", self.name, lag, self._settings.max_lag, len(streams))
            else:
                log.warning("%s: caught up (%.2f s behind): its books are served again", self.name, lag)
            for symbol_stream in streams.values():
                symbol_stream.set_behind(behind)

        lag = ConnectionLag(self._clock, self._settings.max_lag, on_behind)
        batch = Batch()
        for symbol, feed in self.symbols.items():
            if feed.listed or feed.carried:  # one not trading now waits, unlisted, to be taken back
                streams[symbol] = feed.open_stream(lag, batch)
        return streams, lag, batch

    def new_session(self, stream: Stream) -> Session:
        """A session on a new connection's ``stream``, with fresh streams for its symbols (:meth:`new_streams`)."""
        return Session(stream, *self.new_streams(), _Ending())

    def _session(self) -> SessionEnd:
        """One connection's life, in order: connect; follow it until the first reason to end the session; then
        hand its books over, if it still works and serves some, or close it. Returns why it ended. An unexpected
        exception (a bug), or the service stopping, closes the connection on its way to the supervisor."""
        url = self.venue.stream_url
        try:
            stream = self._connect(url)
        except ConnectFailed as error:
            log.warning("%s: cannot connect to %s: %s", self.name, url, error)
            return SessionEnd("connect_failed", str(error))
        log.info("%s: connected to %s (%d symbols)", self.name, url, len(self.symbols))
        self._metrics.set_connected(True)
        session = self.new_session(stream)
        try:
            end = self._follow(session)
        except BaseException:  # a bug, or the service stopping: raised again once the connection is closed
            self._close(session)
            raise
        log.warning("%s: ending the session: %s", self.name, end)
        if end.connection_works and session.serves():
            self._hand_over(session, end.reason)
        else:
            self._close(session, end.reason)
        return end

    def _follow(self, session: Session) -> SessionEnd:
        """Read the connection, subscribed and kept alive, until the first reason to end the session: the reader's
        (the connection broke, or the venue asks us to move), the age limit's (the connection is replaced while it
        still works, before the venue cuts it), or a failed helper's. The reader and the helpers stop here,
        whatever happened."""
        stream, ending = session.stream, session.ending
        age = self._settings.max_connection_age
        too_old = SessionEnd("max_age", f"the connection is {age:.0f} s old")
        greenlets = [self._spawn(self._read_session, session),
                     self._spawn(_after, age, ending.end, too_old),
                     *(self._spawn(_ending_if_it_fails, ending, helper, *args) for helper, *args in
                       ((self._subscribe, stream, list(session.streams)), (self._keepalive, stream),
                        (self._watch_idle, session.lag)))]
        try:
            return ending.wait()
        finally:
            gevent.killall(greenlets)

    def _hand_over(self, session: Session, reason: str) -> None:
        """Keep serving the connection's books until the successor's are in step, so that the outage is as short as
        it can be: a drain reads the connection on until then, and closes it."""
        for symbol_stream in session.streams.values():
            symbol_stream.hand_over(reason)
        self._spawn(self._drain, session)

    def _drain(self, session: Session) -> None:
        """Keep the old connection's books current until the successor's replace them, or the old one breaks."""
        try:
            self._read(session, until=lambda: not session.serves())
        except StreamError as error:
            log.info("%s: the old connection ended before its successor was in step: %s", self.name, error)
        finally:
            self._close(session)

    def _close(self, session: Session, reason: str | None = None) -> None:
        """Close the connection and its symbols' streams (``reason``: see :meth:`SymbolStream.close`)."""
        self._close_streams(session, reason)
        self._metrics.set_connected(False)
        session.stream.close()

    @staticmethod
    def _close_streams(session: Session, reason: str | None = None) -> None:
        """Close the session's symbol streams, their books leaving the merged book (again: nothing changes)."""
        for symbol_stream in session.streams.values():
            symbol_stream.close(reason)

    # -- the stream ------------------------------------------------------------------------------------------

    def _read_session(self, session: Session) -> None:
        """The session's reader: it reads until the session ends, and ends it itself when the connection breaks or
        the venue asks us to move. A broken connection's symbol streams it closes first, their books leaving the merged
        book before any other greenlet runs: the other venue's next batch would merge them again, though nothing
        more can be read on it (the session's end closes the connection, and them again, which changes nothing)."""
        ending = session.ending
        try:
            self._read(session, until=ending.ended)
        except StreamError as error:
            end = self._broken(error)
            self._close_streams(session, end.reason)  # its books leave now, before another greenlet merges them
            ending.end(end)
        except Exception as error:  # noqa: BLE001 - a bug: ending.fail raises it again, for the supervisor
            ending.fail(error)

    def _broken(self, error: StreamError) -> SessionEnd:
        """Why a stream error ends the session: a frame too large (a bad frame too), silence, else a disconnect."""
        reason = SESSION_END_REASONS.get(type(error), "disconnect")
        if reason == "bad_frame":
            self._metrics.bad_frame("too_large")
        return SessionEnd(reason, str(error))

    def _read(self, session: Session, until: Callable[[], bool]) -> None:
        """Route frames until ``until()`` holds, a batch at a time (:meth:`read_batch`); a broken connection raises
        StreamError.

        A socket with frames waiting never blocks, so the reader would keep the hub until it drained them all: with
        many symbols, hundreds of frames while a client's summary waits to be sent. It passes the hub a turn after
        a reader's turn of work instead (``reader_turn``, which bounds a batch too), so the streams go in between.
        Not after every batch: each turn lets every stream send, and with hundreds of streams the reader then fell
        behind the market (their summaries stale before they were sent). ``gevent.sleep(0)``, not a full turn of the
        hub (:func:`~orderbook.hub_turn.pass_turn`): the streams it wakes are what must go in between, and letting
        every ready socket in too every 2 ms cost burst ingest 6-9% end to end (bin/bench --compare, burst), for
        the other venue's reader, which is in anyway whenever this one's socket is drained."""
        stream = session.stream
        clock = time.perf_counter
        turn_ends: float | None = None  # the first batch begins a turn, as does each after a pass of the hub
        probed = clock() - FRESH_PROBE_INTERVAL
        while not until():
            fresh, now = False, clock()
            if now - probed >= FRESH_PROBE_INTERVAL:  # now and then: does the next frame come fresh?
                fresh, probed = not stream.waiting(), now
            turn_ends = self.read_batch(session, until, fresh, turn_ends)
            if clock() >= turn_ends:
                gevent.sleep(0)  # the turn is up: the next batch's first frame comes after it, and begins one

    def read_batch(self, session: Session, until: Callable[[], bool], fresh: bool = False,
                   turn_ends: float | None = None) -> float:
        """One batch: the next frame, and the frames already waiting behind it, applied in order until none waits,
        the reader's turn is up or ``until()`` holds; then each symbol whose book they changed is published once
        (:class:`~orderbook.feed.symbol.Batch`). A frame on a quiet socket is a batch of one, published at once.
        Returns when the reader's turn ends.

        The turn is the caller's (``turn_ends``), the batch ending with it: a batch begun late in a turn once ran a
        whole turn of its own, holding the hub for up to two (4.4 ms seen at 500 symbols, where the one-symbol
        client's p99 is a few of them). A first frame that comes after the turn's end (the reader waited for it,
        and the hub was the others') begins a new turn; so does every batch without ``turn_ends``.

        The wait for the first frame is outside the batch, so that a change made meanwhile (a snapshot loaded) is
        published at once. Frames after it are read only when they have started arriving (``recv_waiting``): the
        turn is checked between frames, so a frame whose rest has not arrived yet holds the batch until it does (its
        start is already here); a ping or a pong ends the batch (waiting inside the batch for the venue's next frame
        after a ping would hold back what the batch changed: found by the burst benchmark, a book served stale
        while the market was quiet; and its pong says the frames before it are applied). The benchmark drives it
        with frames in memory."""
        stream = session.stream
        first = stream.recv()
        with session.batch.open():
            received_at = self._apply(session, first, fresh)
            if turn_ends is None or received_at >= turn_ends:
                turn_ends = received_at + self._settings.reader_turn
            while received_at < turn_ends and not until() and (payload := stream.recv_waiting()) is not None:
                received_at = self._apply(session, payload, False)
        return turn_ends

    def _apply(self, session: Session, payload: bytes | str, fresh: bool) -> float:
        """Handle one frame read now; returns when it was received. The venue's request to move ends the session,
        unless it has ended already: a drain reads on."""
        lag = session.lag
        received_at = lag.last_frame_at = time.perf_counter()
        message = self.handle_frame(session.streams, payload, received_at, lag, fresh)
        if type(message) is ReconnectRequest:
            session.ending.end(SessionEnd("server_request", message.reason))
        return received_at

    def handle_frame(self, streams: dict[str, SymbolStream], payload: bytes | str, received_at: float,
                     lag: ConnectionLag, fresh: bool = False) -> Message | None:
        """All the work one frame costs: count, parse, measure the lag (``fresh``: nothing waited on the socket
        before it, :mod:`orderbook.feed.lag`), route to its symbol, apply, publish if the top changed (at the end of
        the open batch, if one is open: :class:`~orderbook.feed.symbol.Batch`).

        Returns the parsed message (None for a bad frame, which is counted, logged and skipped). No I/O: the tests
        drive it directly, a frame at a time or in batches they open.
        """
        stats = self._stats
        stats.frames += 1
        stats.frame_bytes += len(payload)
        stats.last_frame_at = now = self._wall_clock()
        try:
            message = self.venue.parse_message(payload)
        except BadMessage as error:
            self._bad_frame(streams, error, payload)
            return None
        if type(message) is BookDiff:
            stats.lag.observe(lag.event(message.event_time, now, fresh))
            target = streams.get(message.symbol)
            if target is None:
                self._bad_frame(streams, BadMessage("wrong_symbol", f"{message.symbol!r:.40}", loses_data=False),
                                payload)
                return None
            if message.ignored_rows:
                self._ignored_rows(message, payload)
            target.on_diff(message, received_at)
        elif self.venue.confirms_subscription(message):
            target = streams.get(message.symbol)
            if target is not None:
                target.on_subscribed()
        return message

    def _ignored_rows(self, diff: BookDiff, payload: bytes | str) -> None:
        for reason in diff.ignored_rows:
            self._metrics.ignored_row(reason)
        if self._bad_frame_log.allow("ignored_rows") is not None:
            log.warning("%s: dropped rows the venue should not send (%s): %.*r",
                        self.name, ", ".join(diff.ignored_rows), RAW_EXCERPT, payload)

    def _bad_frame(self, streams: dict[str, SymbolStream], error: BadMessage, payload: bytes | str) -> None:
        self._metrics.bad_frame(error.reason)
        suppressed = self._bad_frame_log.allow(error.reason)
        if suppressed is not None:
            log.warning(
                "%s: bad frame (%s)%s: %.*r",
                self.name, error, f" [{suppressed} more like it not logged]" if suppressed else "",
                RAW_EXCERPT, payload,
            )
        if not error.loses_data:
            return
        # The frame may have carried a change: its symbol's book is rebuilt, or every book when it cannot be told.
        if error.symbol in streams:
            streams[error.symbol].rebuild("bad_frame", error.reason)
        elif not error.symbol:
            for symbol_stream in streams.values():
                symbol_stream.rebuild("bad_frame", error.reason)

    def _subscribe(self, stream: Stream, symbols: list[str]) -> None:
        """Subscribe every symbol, the control messages paced to the venue's message rate."""
        for index, message in enumerate(self.venue.subscribe_messages(symbols)):
            if index:
                gevent.sleep(self.venue.control_interval)
            try:
                stream.send(message)
            except StreamError:
                return  # the reader sees the broken connection

    def _keepalive(self, stream: Stream) -> None:
        """Provoke traffic in a quiet market, so that silence means a dead connection, not a calm one."""
        heartbeat = self.venue.heartbeat_message()
        while True:
            gevent.sleep(self._settings.keepalive_interval)
            try:
                if heartbeat is None:
                    stream.ping()
                else:
                    stream.send(heartbeat)
            except StreamError:
                return  # the reader sees the broken connection

    @staticmethod
    def _watch_idle(lag: ConnectionLag) -> None:
        """A reader behind the venue that finds its socket drained has caught up (:meth:`ConnectionLag.check_idle`)."""
        while True:
            gevent.sleep(IDLE_CAUGHT_UP / 2)
            lag.check_idle(time.perf_counter())


@dataclass(frozen=True, slots=True)
class Session:
    """One session's connection: its stream, its symbols' streams on it, its lag, its batch, and why the session
    ends."""

    stream: Stream
    streams: dict[str, SymbolStream]
    lag: ConnectionLag
    batch: Batch
    ending: _Ending

    def serves(self) -> bool:
        """Whether any of its books is served (the successor's have not replaced them all)."""
        return any(symbol_stream.serves for symbol_stream in self.streams.values())


class _Ending:
    """Why a session ends: the first reason given, by whichever gives one first (the reader, the age limit, a failed
    helper); later ones change nothing."""

    def __init__(self) -> None:
        self._result: AsyncResult[SessionEnd] = AsyncResult()
        self.ended: Callable[[], bool] = self._result.ready
        """Whether the session has ended (a bound method: the reader asks after every frame)."""

    def end(self, reason: SessionEnd) -> None:
        if not self._result.ready():
            self._result.set(reason)

    def fail(self, error: Exception) -> None:
        """The reader raised (a bug): the session ends, and :meth:`wait` raises the error again, so that the
        supervisor sees the connection's task fail. If the session had ended already, the error is raised here, for
        the supervisor to see as the reader's."""
        if self._result.ready():
            raise error
        self._result.set_exception(error, sys.exc_info())

    def wait(self) -> SessionEnd:
        reason = self._result.get()
        assert reason is not None  # set only by end(); fail()'s error is raised instead
        return reason


def _ending_if_it_fails(ending: _Ending, helper: Callable[..., object], *args: object) -> None:
    """Run a session's helper; if it fails (a bug), the session ends, so that the next one starts every helper
    afresh (a keep-alive that died would leave a quiet connection to be taken for a dead one), and the exception
    goes on to the supervisor, which logs and counts it."""
    try:
        helper(*args)
    except Exception:
        ending.end(SessionEnd("helper_failed", f"{getattr(helper, '__name__', helper)} failed"))
        raise


def _after(seconds: float, function: Callable[..., object], *args: object) -> None:
    gevent.sleep(seconds)
    function(*args)
