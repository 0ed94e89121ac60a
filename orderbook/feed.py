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

from orderbook.audit import Divergence, compare
from orderbook.backoff import Backoff
from orderbook.consolidated import ConsolidatedBook
from orderbook.exchanges.base import ExchangeError, ExchangeProtocol
from orderbook.exchanges.messages import BadMessage, BookDiff, BookSnapshot, Message, ReconnectRequest
from orderbook.exchanges.sync import BookSync, Outcome
from orderbook.metrics import ExchangeMetrics
from orderbook.rest import AUDIT_SHARE, SnapshotFetcher
from orderbook.transport import FrameTooLarge, open_stream

log = logging.getLogger(__name__)

RAW_EXCERPT = 200
BAD_FRAME_LOG_INTERVAL = 10.0
TOO_OLD_RETRY_BASE = 0.25
TOO_OLD_RETRY_CAP = 4.0
"""A snapshot older than the stream is asked for again after 0.25 s, then up to 4 s apart (and never faster
than the venue's REST budget allows): a lagging REST book catches up in seconds."""
AUDIT_LOG_LEVELS = 3


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
    max_connection_age: float = 84_600.0
    """A connection this old is replaced, make-before-break: Binance cuts every connection at 24 hours."""
    audit_interval: float = 60.0
    """Seconds between drift audits of an in-step book (0: none)."""
    stream_lag_bound: float = 5.0
    """How long an audit waits for the stream to catch up with its snapshot (Bitstamp's REST can be ahead)."""

    @property
    def keepalive_interval(self) -> float:
        return self.silence_timeout / 3


HANDOVER_REASONS = frozenset({"server_request", "max_age"})
"""Sessions that end while their connection still works: its book is served until the successor is in step."""


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
        self._backoff = Backoff(settings.backoff_base, settings.backoff_cap)
        self.snapshots = SnapshotFetcher(
            protocol, metrics, http=http or requests.Session(), connect_timeout=settings.connect_timeout,
            read_timeout=settings.snapshot_timeout, backoff=self._backoff,
        )
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
            # A server's request to move, or a connection retired by age, is not a failure: go at once (the old
            # book is served meanwhile).
            delay = 0.0 if reason in HANDOVER_REASONS else self._backoff.next()
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
            reader = gevent.getcurrent()
            helpers.append(self._spawn(self._keepalive, ws))
            helpers.append(self._spawn(_after, self._settings.max_connection_age, self._retire, reader))
            if self._settings.audit_interval:
                helpers.append(self._spawn(self._audit_loop, sync, reader))
            self._read(ws, sync, helpers)
            return "closed"  # not reached: _read only ends by raising
        except Rebuild as rebuild:
            # The exchange asked us to move, or the connection is too old, while it still works: keep serving its
            # book until the new connection's book is in step, so that the outage is as short as it can be.
            hand_over = rebuild.reason in HANDOVER_REASONS and self._book.book(self.name) is sync.book
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
        quiet_timer: gevent.Greenlet | None = None
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
            if until is not None or snapshot_requested or message is None or sync.in_step:
                continue  # (in step already: a quiet pair's snapshot was taken)
            if ready_for_snapshot(message):
                snapshot_requested = True
                if quiet_timer is not None:
                    quiet_timer.kill(block=False)  # a quiet pair's load under way gives way to this one
                helpers.append(self._spawn(self._load_snapshot, sync, gevent.getcurrent()))
            elif quiet_timer is None and self.protocol.confirms_subscription(message):
                quiet_timer = self._quiet_timer(sync, helpers)

    def _quiet_timer(self, sync: BookSync, helpers: list[gevent.Greenlet]) -> gevent.Greenlet | None:
        """A venue whose snapshot waits for a diff (Bitstamp): if none comes, the pair is quiet; take it then."""
        wait = self.protocol.quiet_snapshot_wait
        if wait is None:
            return None
        reader = gevent.getcurrent()

        def quiet() -> None:
            if sync.buffered == 0:
                log.info("%s: no diff %.0f s after subscribing: a quiet pair, taking its snapshot", self.name, wait)
                self._load_snapshot(sync, reader)

        timer = self._spawn(_after, wait, quiet)
        helpers.append(timer)
        return timer

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
            if message.ignored_rows:
                self._ignored_rows(message, payload)
            self._apply(sync, message, received_at)
        return message

    def _ignored_rows(self, diff: BookDiff, payload: bytes | str) -> None:
        for reason in diff.ignored_rows:
            self._metrics.ignored_row(reason)
        if self._bad_frame_log.allow("ignored_rows") is not None:
            log.warning("%s: dropped rows the venue should not send (%s): %.*r",
                        self.name, ", ".join(diff.ignored_rows), RAW_EXCERPT, payload)

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
        too_old = Backoff(TOO_OLD_RETRY_BASE, TOO_OLD_RETRY_CAP)
        while True:
            try:
                snapshot = self.snapshots.fetch()
            except ExchangeError as error:
                self._on_fatal(error)
                return
            outcome = self.install_snapshot(sync, snapshot)
            if outcome is Outcome.APPLIED:
                return
            if outcome is Outcome.SNAPSHOT_TOO_OLD:
                delay = too_old.next()
                log.info("%s: snapshot %s is older than the stream; fetching again in %.2f s",
                         self.name, snapshot.last_id, delay)
                gevent.sleep(delay)  # and then the venue's REST budget, in fetch()
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

    # -- the drift audit -------------------------------------------------------------------------------------

    def _audit_loop(self, sync: BookSync, reader: gevent.Greenlet) -> None:
        """Now and then, check the book against a fresh snapshot; rebuild it if they disagree."""
        while True:
            gevent.sleep(self._settings.audit_interval)
            if not sync.in_step:
                continue
            try:
                divergences = self.audit(sync)
            except ExchangeError as error:
                self._on_fatal(error)
                return
            if divergences:
                reader.kill(Rebuild("audit", f"{len(divergences)} levels differ from the venue's"), block=False)
                return

    def audit(self, sync: BookSync) -> list[Divergence]:
        """One audit: the levels that differ (logged and counted), or [] when they agree or it was skipped."""
        protocol, budget = self.protocol, self.snapshots.budget
        if budget.delay(protocol.snapshot_weight, AUDIT_SHARE) > 0:
            self._metrics.audit("skipped")  # the venue's minute is busy: the book's own needs come first
            return []
        snapshot = self.snapshots.fetch_once(AUDIT_SHARE)
        if snapshot is None or not sync.in_step:
            self._metrics.audit("skipped")
            return []
        # The stream can lag the REST book: wait until it has passed the snapshot's moment, or for the bound.
        deadline = time.monotonic() + self._settings.stream_lag_bound
        while sync.in_step and sync.last_id < snapshot.last_id and time.monotonic() < deadline:
            gevent.sleep(0.05)
        since = sync.recorded_since()
        if since is None or since > snapshot.last_id or (
            protocol.snapshot_names_an_event and sync.last_id < snapshot.last_id
        ):
            log.info("%s: audit skipped: the book cannot be compared with snapshot %s", self.name, snapshot.last_id)
            self._metrics.audit("skipped")
            return []
        with self._book.lock:
            divergences = compare(sync.book, snapshot, sync.recent, protocol.snapshot_depth)
        if not divergences:
            self._metrics.audit("match")
            return []
        self._metrics.audit("divergent", len(divergences))
        log.warning("%s: audit: %d levels differ from snapshot %s, rebuilding; first: %s", self.name,
                    len(divergences), snapshot.last_id, "; ".join(str(d) for d in divergences[:AUDIT_LOG_LEVELS]))
        return divergences

    def _retire(self, reader: gevent.Greenlet) -> None:
        """The connection is as old as it may get: move to a new one while this one still works."""
        age = self._settings.max_connection_age
        reader.kill(Rebuild("max_age", f"the connection is {age:.0f} s old"), block=False)


def _after(seconds: float, function: Callable[..., object], *args: object) -> None:
    gevent.sleep(seconds)
    function(*args)


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
