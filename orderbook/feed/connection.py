"""One connection to a venue, carrying a group of symbols: its supervisor and its reader.

Each session opens a stream through the transport boundary (:mod:`orderbook.stream`), subscribes its symbols
paced to the venue's message rate, keeps the connection provably alive, and routes every frame to its symbol's
:class:`~orderbook.feed.symbol.SymbolStream`. Losing the connection ends the session: every symbol on it is
rebuilt on the next one, each served again as soon as it is in step. A connection the venue asks us to leave, or
one as old as it may get, is replaced make-before-break: its books are served until the successor's are in step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import gevent

from orderbook.backoff import Backoff
from orderbook.exchanges.base import Venue
from orderbook.exchanges.messages import BadMessage, BookDiff, Message, ReconnectRequest
from orderbook.feed.lag import FRESH_PROBE_INTERVAL, IDLE_CAUGHT_UP, ClockOffset, ConnectionLag
from orderbook.feed.settings import HANDOVER_REASONS, FeedSettings, SessionEnded
from orderbook.feed.symbol import SymbolFeed, SymbolStream
from orderbook.logs import LogThrottle
from orderbook.metrics import VenueMetrics
from orderbook.stream import Connector, ConnectFailed, FrameTooLarge, Stream, StreamError, StreamSilent

log = logging.getLogger(__name__)

RAW_EXCERPT = 200
BAD_FRAME_LOG_INTERVAL = 10.0
SESSION_END_REASONS = {FrameTooLarge: "bad_frame", StreamSilent: "silence"}
"""Why a stream error ended a session, for the metrics and the log; any other: ``disconnect``."""
READER_TURN = 0.002
"""Seconds a reader works through waiting frames before it lets the other greenlets run."""


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
    ) -> None:
        """``clock``: the venue's clock offset, shared by its connections (a new one if not given)."""
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

    # -- supervisor ------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Run sessions until killed (``GreenletExit``)."""
        while True:
            started = time.monotonic()
            reason = self._session()
            self._metrics.reconnect(reason)
            if time.monotonic() - started >= self._settings.healthy_after:
                self._backoff.reset()
            # A server's request to move, or a connection retired by age, is not a failure: go at once (the old
            # books are served meanwhile).
            delay = 0.0 if reason in HANDOVER_REASONS else self._backoff.next()
            log.warning("%s: session ended (%s); reconnecting in %.1f s", self.name, reason, delay)
            gevent.sleep(delay)

    def new_streams(self) -> tuple[dict[str, SymbolStream], ConnectionLag]:
        """What a new session starts with: a fresh stream for every symbol the venue still lists, made current, and
        the connection's lag, which takes them out of the merged book while it is past ``--max-lag`` (one log line
        an episode)."""
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
        for symbol, feed in self.symbols.items():
            if feed.listed:
                streams[symbol] = feed.open_stream(lag)
        return streams, lag

    def _session(self) -> str:
        """One connection's life. Returns why it ended."""
        url = self.venue.stream_url
        try:
            stream = self._connect(url)
        except ConnectFailed as error:
            log.warning("%s: cannot connect to %s: %s", self.name, url, error)
            return "connect_failed"
        log.info("%s: connected to %s (%d symbols)", self.name, url, len(self.symbols))
        self._metrics.set_connected(True)
        streams, lag = self.new_streams()
        helpers: list[gevent.Greenlet] = []
        hand_over = False
        reason: str | None = None  # None: killed, the service stopping
        try:
            reader = gevent.getcurrent()
            for helper, *args in ((self._subscribe, stream, list(streams)), (self._keepalive, stream),
                                  (self._watch_idle, lag),
                                  (_after, self._settings.max_connection_age, self._retire, reader)):
                helpers.append(self._spawn(_or_end_session, reader, helper, *args))
            self._read(stream, streams, lag)
            return "closed"  # not reached: _read only ends by raising
        except SessionEnded as ended:
            # The venue asked us to move, or the connection is too old, while it still works: keep serving its
            # books until the new connection's are in step, so that the outage is as short as it can be.
            hand_over = ended.reason in HANDOVER_REASONS and any(s.serves for s in streams.values())
            log.warning("%s: ending the session: %s", self.name, ended)
            reason = ended.reason
            return reason
        except StreamError as error:
            reason = SESSION_END_REASONS.get(type(error), "disconnect")
            if reason == "bad_frame":
                self._metrics.bad_frame("too_large")
            log.warning("%s: ending the session: %s: %s", self.name, reason, error)
            return reason
        finally:
            gevent.killall(helpers)
            if hand_over:  # the connection stays open (and counted) until drained
                assert reason is not None
                for symbol_stream in streams.values():
                    symbol_stream.hand_over(reason)
                self._spawn(self._drain, stream, streams, lag)
            else:
                self._metrics.set_connected(False)
                for symbol_stream in streams.values():
                    symbol_stream.close(reason)
                stream.close()

    def _drain(self, stream: Stream, streams: dict[str, SymbolStream], lag: ConnectionLag) -> None:
        """Keep the old connection's books current until the successor's replace them, or the old one breaks."""
        try:
            self._read(stream, streams, lag, until=lambda: not any(s.serves for s in streams.values()))
        except (SessionEnded, StreamError) as error:
            log.info("%s: the old connection ended before its successor was in step: %s", self.name, error)
        finally:
            for symbol_stream in streams.values():
                symbol_stream.close()
            self._metrics.set_connected(False)
            stream.close()

    # -- the stream ------------------------------------------------------------------------------------------

    def _read(self, stream: Stream, streams: dict[str, SymbolStream], lag: ConnectionLag,
              until: Callable[[], bool] | None = None) -> None:
        """Route frames until something breaks (raises) or ``until()`` holds (draining)."""
        handle, pass_turn, clock = self.handle_frame, gevent.sleep, time.perf_counter
        turn_taken = received_at = clock()
        probed = received_at - FRESH_PROBE_INTERVAL
        fresh = False
        while until is None or not until():
            if received_at - probed >= FRESH_PROBE_INTERVAL:  # now and then: does the next frame come fresh?
                fresh, probed = not stream.waiting(), received_at
            payload = stream.recv()
            received_at = lag.last_frame_at = clock()
            message = handle(streams, payload, received_at, lag, fresh)
            fresh = False
            if type(message) is ReconnectRequest and until is None:
                raise SessionEnded("server_request", message.reason)
            # A socket with frames waiting never blocks, so the reader would keep the hub until it drained them
            # all: with many symbols, hundreds of frames while a client's summary waits to be sent. It passes the
            # hub a turn after READER_TURN of work instead, so the streams (and the other venue) go in between.
            # Not after every frame: each turn lets every stream send, and with hundreds of streams the reader
            # then fell behind the market (their summaries stale before they were sent).
            if received_at - turn_taken >= READER_TURN:
                pass_turn(0)
                turn_taken = clock()

    def handle_frame(self, streams: dict[str, SymbolStream], payload: bytes | str, received_at: float,
                     lag: ConnectionLag, fresh: bool = False) -> Message | None:
        """All the work one frame costs: count, parse, measure the lag (``fresh``: nothing waited on the socket
        before it, :mod:`orderbook.feed.lag`), route to its symbol, apply, publish if the top changed.

        Returns the parsed message (None for a bad frame, which is counted, logged and skipped). No I/O: the
        benchmark drives it directly.
        """
        stats = self._stats
        stats.frames += 1
        stats.frame_bytes += len(payload)
        stats.last_frame_at = time.time()
        try:
            message = self.venue.parse_message(payload)
        except BadMessage as error:
            self._bad_frame(streams, error, payload)
            return None
        if type(message) is BookDiff:
            stats.lag.observe(lag.event(message.event_time, time.time(), fresh))
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

    def _retire(self, reader: gevent.Greenlet) -> None:
        """The connection is as old as it may get: move to a new one while this one still works."""
        age = self._settings.max_connection_age
        reader.kill(SessionEnded("max_age", f"the connection is {age:.0f} s old"), block=False)


def _or_end_session(reader: gevent.Greenlet, helper: Callable[..., object], *args: object) -> None:
    """Run a session's helper; if it fails (a bug), the session ends, so that the next one starts every helper
    afresh (a keep-alive that died would leave a quiet connection to be taken for a dead one), and the exception
    goes on to the supervisor, which logs and counts it."""
    try:
        helper(*args)
    except Exception:
        reader.kill(SessionEnded("helper_failed", f"{getattr(helper, '__name__', helper)} failed"), block=False)
        raise


def _after(seconds: float, function: Callable[..., object], *args: object) -> None:
    gevent.sleep(seconds)
    function(*args)
