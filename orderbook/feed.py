"""One exchange's feed: the supervisor that connects, buffers, snapshots, applies, and rebuilds from scratch.

Two error boundaries (STYLE.md): a bad frame is counted, logged (cut short) and skipped, unless it may have
carried a change we can no longer apply, in which case the book is rebuilt; anything that breaks the connection
or the book ends the session, and the supervisor loop starts a new one after a backoff. Each exchange has its
own feed, so one exchange rebuilding never touches the other's book.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import gevent
import requests
import websocket

from orderbook.backoff import Backoff
from orderbook.consolidated import ConsolidatedBook
from orderbook.exchanges.base import ExchangeError, ExchangeProtocol
from orderbook.exchanges.messages import BadMessage, BookDiff, BookSnapshot, Message, ReconnectRequest
from orderbook.exchanges.sync import BookSync, Outcome
from orderbook.metrics import ExchangeMetrics
from orderbook.transport import FrameTooLarge, open_stream

log = logging.getLogger(__name__)

RAW_EXCERPT = 200
BAD_FRAME_LOG_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class FeedSettings:
    connect_timeout: float = 5.0
    snapshot_timeout: float = 10.0
    silence_timeout: float = 10.0
    """No byte at all for this long (data, pong, heartbeat reply) and the connection is taken for dead."""
    max_frame_bytes: int = 1 << 20
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    healthy_after: float = 30.0
    """A session that lasted this long resets the backoff."""

    @property
    def keepalive_interval(self) -> float:
        return self.silence_timeout / 3


class Rebuild(Exception):
    """Ends the session: the book is discarded and rebuilt on a new connection."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}{': ' if detail else ''}{detail}")
        self.reason = reason


class ExchangeFeed:
    def __init__(
        self,
        protocol: ExchangeProtocol,
        book: ConsolidatedBook,
        *,
        on_change: Callable[[float], None],
        on_fatal: Callable[[ExchangeError], None],
        metrics: ExchangeMetrics,
        settings: FeedSettings = FeedSettings(),
        http: requests.Session | None = None,
        spawn: Callable[..., gevent.Greenlet] = gevent.spawn,
    ) -> None:
        """``spawn`` starts the feed's helper greenlets (the owner passes its pool's, to account for them)."""
        self.protocol = protocol
        self.name = protocol.name
        self._book = book
        self._on_change = on_change
        self._on_fatal = on_fatal
        self._metrics = metrics
        self._stats = metrics.stats
        self._settings = settings
        self._spawn = spawn
        self._http = http or requests.Session()
        self._backoff = Backoff(settings.backoff_base, settings.backoff_cap)
        self._rest_not_before = 0.0  # honours Retry-After across sessions
        self._sync: BookSync | None = None
        self._bad_frame_log = LogThrottle(BAD_FRAME_LOG_INTERVAL)
        self._stats.bid_levels = lambda: self._sync.book.bid_depth if self._sync else 0
        self._stats.ask_levels = lambda: self._sync.book.ask_depth if self._sync else 0

    # -- supervisor ------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Run sessions until killed (``GreenletExit``), each ended session followed by a backoff."""
        while True:
            started = time.monotonic()
            reason = self._session()
            self._metrics.reconnect(reason)
            if time.monotonic() - started >= self._settings.healthy_after:
                self._backoff.reset()
            # A server's request to move is not a failure: go at once (the old book is served meanwhile).
            delay = 0.0 if reason == "server_request" else self._backoff.next()
            log.warning("%s: session ended (%s); reconnecting in %.1f s", self.name, reason, delay)
            gevent.sleep(delay)

    def _session(self) -> str:
        """One connection's life. Returns why it ended."""
        url = self.protocol.stream_url
        try:
            ws = open_stream(
                url,
                connect_timeout=self._settings.connect_timeout,
                read_timeout=self._settings.silence_timeout,
                max_frame_bytes=self._settings.max_frame_bytes,
            )
        except (OSError, websocket.WebSocketException) as error:
            log.warning("%s: cannot connect to %s: %s", self.name, url, error)
            return "connect_failed"
        log.info("%s: connected to %s", self.name, url)
        self._metrics.set_connected(True)
        self._sync = sync = self.new_sync()
        helpers: list[gevent.Greenlet] = []
        hand_over = False
        try:
            for message in self.protocol.subscribe_messages():
                ws.send(message)
            helpers.append(self._spawn(self._keepalive, ws))
            self._read(ws, sync, helpers)
            return "closed"  # not reached: _read only ends by raising
        except Rebuild as rebuild:
            # The exchange asked us to move while this connection still works: keep serving its book until the
            # new connection's book is in step, so that the outage is as short as it can be.
            hand_over = rebuild.reason == "server_request" and self._book.book(self.name) is sync.book
            log.warning("%s: rebuilding the book: %s", self.name, rebuild)
            self._metrics.rebuild(rebuild.reason)
            return rebuild.reason
        except (OSError, websocket.WebSocketException) as error:
            log.warning("%s: connection lost: %s", self.name, error)
            self._metrics.rebuild("disconnect")
            return "disconnect"
        finally:
            gevent.killall(helpers)
            self._sync = None
            self._metrics.set_connected(False)
            if hand_over:
                self._spawn(self._drain, ws, sync)
            else:
                self._leave_book(sync)
                hang_up(ws)

    def _drain(self, ws: websocket.WebSocket, sync: BookSync) -> None:
        """Keep the old connection's book current until the successor's book replaces it, or the old one breaks."""
        try:
            self._read(ws, sync, [], until=lambda: self._book.book(self.name) is not sync.book)
        except (Rebuild, OSError, websocket.WebSocketException) as error:
            log.info("%s: the old connection ended before its successor was in step: %s", self.name, error)
        finally:
            self._leave_book(sync)
            hang_up(ws)

    def _leave_book(self, sync: BookSync) -> None:
        """Stop serving ``sync``'s book, unless a newer session's book has replaced it already."""
        with self._book.lock:
            was_served = self._book.book(self.name) is sync.book
            if was_served:
                self._book.detach(self.name)
        if was_served:
            self._metrics.set_in_step(False)
            self._on_change(time.perf_counter())

    # -- the stream ------------------------------------------------------------------------------------------

    def _read(
        self,
        ws: websocket.WebSocket,
        sync: BookSync,
        helpers: list[gevent.Greenlet],
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Apply frames until something breaks (raises :class:`Rebuild`) or ``until()`` holds (draining)."""
        handle = self.handle_frame
        ready_for_snapshot = self.protocol.ready_for_snapshot
        snapshot_requested = False
        while until is None or not until():
            try:
                opcode, payload = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                raise Rebuild("silence", f"nothing received for {self._settings.silence_timeout:.0f} s") from None
            except FrameTooLarge as error:
                self._metrics.bad_frame("too_large")
                raise Rebuild("bad_frame", str(error)) from None
            except websocket.WebSocketConnectionClosedException:
                raise Rebuild("disconnect", "connection closed") from None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise Rebuild("disconnect", "closed by the exchange")
            message = handle(sync, payload, time.perf_counter())
            if type(message) is ReconnectRequest:
                if until is None:
                    raise Rebuild("server_request", message.reason)
            if until is None and not snapshot_requested and message is not None and ready_for_snapshot(message):
                snapshot_requested = True
                helpers.append(self._spawn(self._load_snapshot, sync, gevent.getcurrent()))

    def new_sync(self) -> BookSync:
        """A fresh book sync for this feed, watching as many levels as are served."""
        return self.protocol.new_sync(watch_depth=self._book.depth)

    def handle_frame(self, sync: BookSync, payload: bytes | str, received_at: float) -> Message | None:
        """All the work one frame costs: count, parse, apply, publish if the served top changed.

        Returns the parsed message (None for a bad frame, which is counted, logged and skipped); raises
        :class:`Rebuild` when the book can no longer be vouched for. No I/O: the benchmark drives it directly.
        """
        stats = self._stats
        stats.frames += 1
        stats.frame_bytes += len(payload)
        stats.last_frame_at = time.time()
        try:
            message = self.protocol.parse_message(payload)
        except BadMessage as error:
            self._bad_frame(error, payload)
            return None
        if type(message) is BookDiff:
            self._apply(sync, message, received_at)
        return message

    def _apply(self, sync: BookSync, diff: BookDiff, received_at: float) -> None:
        book = self._book
        with book.lock:
            outcome = sync.on_diff(diff)
            if outcome.breaks_book and book.book(self.name) is sync.book:
                book.detach(self.name)
        if outcome is Outcome.APPLIED:
            self._metrics.event_age(time.time() - diff.event_time)
            if sync.top_changed:
                self._on_change(received_at)
        elif outcome is Outcome.STALE:
            self._metrics.stale_diff()
        elif outcome.breaks_book:
            raise Rebuild(outcome.value, f"at id {diff.first_id}..{diff.final_id}")

    def _bad_frame(self, error: BadMessage, payload: bytes | str) -> None:
        self._metrics.bad_frame(error.reason)
        suppressed = self._bad_frame_log.allow(error.reason)
        if suppressed is not None:
            log.warning(
                "%s: bad frame (%s)%s: %.*r",
                self.name, error, f" [{suppressed} more like it not logged]" if suppressed else "", RAW_EXCERPT, payload,
            )
        if error.loses_data:
            raise Rebuild("bad_frame", error.reason)

    def _keepalive(self, ws: websocket.WebSocket) -> None:
        """Provoke traffic in a quiet market, so that silence means a dead connection, not a calm one."""
        heartbeat = self.protocol.heartbeat_message()
        while True:
            gevent.sleep(self._settings.keepalive_interval)
            try:
                if heartbeat is None:
                    ws.ping()
                else:
                    ws.send(heartbeat)
            except (OSError, websocket.WebSocketException):
                return  # the reader sees the broken connection

    # -- the snapshot ----------------------------------------------------------------------------------------

    def _load_snapshot(self, sync: BookSync, reader: gevent.Greenlet) -> None:
        """Fetch snapshots until one fits the buffered stream, then serve the book."""
        while True:
            try:
                snapshot = self._fetch_snapshot()
            except ExchangeError as error:
                self._on_fatal(error)
                return
            outcome = self.install_snapshot(sync, snapshot)
            if outcome is Outcome.APPLIED:
                return
            if outcome is Outcome.SNAPSHOT_TOO_OLD:
                log.info("%s: snapshot %s is older than the stream; fetching again", self.name, snapshot.last_id)
                gevent.sleep(self._backoff.base / 2)
                continue
            reader.kill(Rebuild(outcome.value, "while replaying the buffered diffs"), block=False)
            return

    def install_snapshot(self, sync: BookSync, snapshot: BookSnapshot) -> Outcome:
        """Load a snapshot into ``sync``; once it fits, serve the book. No I/O."""
        with self._book.lock:
            outcome = sync.on_snapshot(snapshot)
            if outcome is Outcome.APPLIED:
                self._book.attach(self.name, sync.book)
        if outcome is Outcome.APPLIED:
            log.info(
                "%s: in step from snapshot %s (%d bids, %d asks)",
                self.name, snapshot.last_id, sync.book.bid_depth, sync.book.ask_depth,
            )
            self._metrics.set_in_step(True)
            self._on_change(time.perf_counter())
        return outcome

    def _fetch_snapshot(self) -> BookSnapshot:
        """Retry until a usable snapshot arrives; honour Retry-After; raise only for a configuration error."""
        retry = Backoff(self._settings.backoff_base, self._settings.backoff_cap)
        url = self.protocol.snapshot_url
        while True:
            wait = self._rest_not_before - time.monotonic()
            if wait > 0:
                gevent.sleep(wait)
            started = time.perf_counter()
            try:
                response = self._http.get(url, timeout=(self._settings.connect_timeout, self._settings.snapshot_timeout))
            except requests.RequestException as error:
                self._metrics.snapshot_error("network")
                log.warning("%s: snapshot request failed: %s", self.name, error)
                gevent.sleep(retry.next())
                continue
            self._metrics.snapshot_fetched(time.perf_counter() - started)
            if response.status_code == 200:
                try:
                    return self.protocol.parse_snapshot(response.content)
                except BadMessage as error:
                    self._metrics.snapshot_error("bad_body")
                    log.warning("%s: unusable snapshot (%s): %.*r", self.name, error, RAW_EXCERPT, response.content)
                    gevent.sleep(retry.next())
                    continue
            self._metrics.snapshot_error(str(response.status_code))
            fatal = self.protocol.snapshot_error(response.status_code, response.content)
            if fatal is not None:
                raise fatal
            delay = retry_after(response) if response.status_code in (418, 429) else None
            if delay is None:
                delay = retry.next()
            else:
                self._rest_not_before = time.monotonic() + delay
            log.warning(
                "%s: snapshot request answered HTTP %d: %.*r; retrying in %.1f s",
                self.name, response.status_code, RAW_EXCERPT, response.content, delay,
            )
            gevent.sleep(delay)


class LogThrottle:
    """At most one log line per key per interval, so a venue spewing bad frames cannot flood the log."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None: do not log. Otherwise log, mentioning the returned count of lines suppressed since the last one."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)


def hang_up(ws: websocket.WebSocket) -> None:
    """Say goodbye without waiting for an answer: reading the reply could mean reading whatever the exchange
    still has queued, a refused over-size frame included, or waiting on a connection that went silent."""
    try:
        ws.send_close()
    except (OSError, websocket.WebSocketException):
        pass  # the connection is already gone
    ws.shutdown()


def retry_after(response: requests.Response, default: float = 60.0) -> float:
    """Seconds to wait from a ``Retry-After`` header (Binance sends seconds); a rate-limited venue is not retried sooner."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default
