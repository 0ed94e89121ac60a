"""What both simulated venues share: the true book, the connection registry, REST faults and the common faults.

A venue subclass adds its wire protocol: how a book change becomes frames, how client messages are answered,
how its snapshot endpoint looks. Everything runs in one gevent hub, and neither publishing nor capturing a
snapshot yields, so a snapshot always reflects exactly the changes already queued to every client. Writing a
captured snapshot's body does yield (:func:`format_levels_pausing`), as a real venue's REST does not hold up its
streams.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import gevent

from orderbook.book import VenueBook, PriceLevel
from orderbook.hub_turn import pass_turn
from orderbook.prices import format_decimal
from orderbook.simulator.faults import REST_STATUSES, FaultError, RestFaults, check_kind, rest_fault_response
from orderbook.simulator.market import LOT, BookChange, VenueModel
from orderbook.simulator.wire import Request, Response, WebSocket

logger = logging.getLogger(__name__)


def levels_json(levels: Iterable[tuple[str, str]], separator: str = ",") -> str:
    """``[["p","a"],...]`` from already formatted strings (decimal digits only, so no escaping is needed)."""
    return "[" + separator.join(f'["{price}"{separator}"{amount}"]' for price, amount in levels) + "]"


def format_levels(levels: Sequence[PriceLevel]) -> list[tuple[str, str]]:
    return [(format_decimal(price), format_decimal(amount)) for price, amount in levels]


FORMAT_SLICE = 100
"""Levels of a REST body formatted between two pauses (~0.07 ms)."""


def format_levels_pausing(levels: Sequence[PriceLevel]) -> list[tuple[str, str]]:
    """:func:`format_levels` for a REST body, :data:`FORMAT_SLICE` levels at a time with a turn of the hub between
    two slices: a deep body (1,000 levels a side: ~1.4 ms) would otherwise stop every stream of the simulator while
    it is written, and send their frames in a burst after it, which a venue's REST does not do to its streams.
    A full turn (:func:`~orderbook.hub_turn.pass_turn`), not ``gevent.sleep(0)``: the markets' events come from a
    timer (:class:`~orderbook.simulator.feed.ModelFeed`), which only a turn of the hub lets fire, so with
    ``sleep(0)`` no event was made while a body was written and they were all made, and sent, after it.
    ``levels`` is a copy, captured with the snapshot's id before the first pause: the book moves on meanwhile."""
    formatted: list[tuple[str, str]] = []
    for start in range(0, len(levels), FORMAT_SLICE):
        if start:
            pass_turn()
        formatted += format_levels(levels[start:start + FORMAT_SLICE])
    return formatted


class Session:
    """One client connection and what it is subscribed to (stream or channel names, in subscription order).

    ``recent`` holds the arrival times of the client's messages in the last second (for a venue's flood limit);
    ``timers`` the greenlets scheduled for this connection (an age cut), killed when it ends.
    """

    __slots__ = ("ws", "subscriptions", "combined", "recent", "timers")

    def __init__(self, ws: WebSocket, combined: bool = False) -> None:
        self.ws = ws
        self.subscriptions: dict[str, None] = {}
        self.combined = combined
        self.recent: deque[float] = deque()
        self.timers: list[gevent.Greenlet] = []

    def count_message(self, now: float, limit: int) -> bool:
        """Note one client message; True when the last second now holds more than ``limit`` of them."""
        recent = self.recent
        recent.append(now)
        while now - recent[0] >= 1.0:
            recent.popleft()
        return len(recent) > limit


class Exchange:
    """Base of the two venues. ``name`` is the exchange's name on the wire of the product (``binance``...)."""

    name = ""
    rest_statuses: tuple[str, ...] = REST_STATUSES
    """The scripted REST answers this venue is known to give (the ``rest`` fault refuses others)."""
    beat: float | None = None
    """Seconds between the sends the venue makes for every symbol at once, their frames stamped alike (Binance's
    ``@depth@100ms`` streams: docs/protocols.md, "When frames come"); None: each symbol sends on its own."""

    def __init__(self, *, snapshot_delay: float = 0.0) -> None:
        self.truth = VenueBook()
        self.snapshot_delay = snapshot_delay
        self.silenced = False
        self.rest_faults = RestFaults()
        self.sessions: dict[Session, None] = {}
        self._subscribers: dict[str, dict[Session, None]] = {}
        self.counters: Counter[str] = Counter(dict.fromkeys(
            ("events", "frames_sent", "connections", "messages_received", "rest_requests", "junk_rows_sent"), 0))
        self.faults: Counter[str] = Counter()
        self.model: VenueModel | None = None
        """The venue's market model when model-driven (None when replaying): faults that change the book go
        through it, so that the model's idea of the book stays the true book."""
        self.junk_pending = 0
        self.venue: Exchange = self
        """The market that owns the venue's connections, REST faults and limits (the default symbol's)."""
        self.beat_ms: int | None = None
        """Set on the venue while the feed publishes one beat of a venue with a beat (:attr:`beat`): the event time
        every frame of the beat carries; None: each frame is stamped when it is made."""
        self.markets: dict[str, Exchange] = {}
        """On the venue: every market it serves by its name on the wire (Binance symbol, Bitstamp pair)."""
        self.on_written: Callable[[float], None] | None = None
        """While set, called with the write time of each frame this market sends (a probe's, :meth:`tracing`)."""

    @contextmanager
    def tracing(self, on_written: Callable[[float], None]) -> Iterator[None]:
        """Frames sent inside the block call ``on_written`` with the moment each is handed to its socket."""
        self.on_written = on_written
        try:
            yield
        finally:
            self.on_written = None

    def add_market(self, market: Exchange) -> None:
        """Serve another symbol on this venue: it shares this venue's connections and subscriptions (a stream or
        channel name names its symbol), and this venue's REST endpoint answers for it."""
        if market.key in self.markets:
            raise ValueError(f"{self.name}: {market.key} served twice")
        market.venue = self
        market._subscribers = self._subscribers
        self.markets[market.key] = market

    @property
    def key(self) -> str:
        """The market's name on the wire (Binance: the symbol, Bitstamp: the pair)."""
        raise NotImplementedError

    # -- the book ----------------------------------------------------------------------------------------

    def load(self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel]) -> None:
        self.truth.load(bids, asks)

    def apply_unsent(self, change: BookChange) -> None:
        """Apply a change to the true book without sending it nor advancing the venue's sequence."""
        self.truth.apply(change.bids, change.asks)

    def load_recorded(self, snapshot_id: int, bids: list[PriceLevel], asks: list[PriceLevel]) -> None:
        """Start from a recorded snapshot (``snapshot_id``: Binance lastUpdateId, Bitstamp microtimestamp)."""
        raise NotImplementedError

    def publish(self, change: BookChange) -> None:
        """Apply one event to the true book and send it to every subscriber."""
        raise NotImplementedError

    def publish_recorded(self, payload: dict) -> None:
        """Apply one recorded frame to the true book and send it exactly as recorded."""
        raise NotImplementedError

    def flush(self, now: float) -> None:
        """Called after each batch of events: venues send their periodic or coalesced frames here."""

    def truth_json(self, depth: int | None) -> dict[str, object]:
        bids = self.truth.top_bids(depth) if depth is not None else self.truth.bids()
        asks = self.truth.top_asks(depth) if depth is not None else self.truth.asks()
        return {"bids": [list(level) for level in format_levels(bids)],
                "asks": [list(level) for level in format_levels(asks)]}

    # -- WebSocket ---------------------------------------------------------------------------------------

    def handle_ws(self, ws: WebSocket) -> None:
        """The WireServer's WebSocket handler: register, answer client messages until the connection ends."""
        ws.silenced = self.silenced
        session = self.open_session(ws)
        self.sessions[session] = None
        self.counters["connections"] += 1
        try:
            while (text := ws.receive()) is not None:
                self.counters["messages_received"] += 1
                self.on_message(session, text)
        finally:
            for timer in session.timers:
                timer.kill(block=False)
            for name in list(session.subscriptions):
                self.unsubscribe(session, name)
            self.sessions.pop(session, None)

    def open_session(self, ws: WebSocket) -> Session:
        return Session(ws)

    def on_message(self, session: Session, text: str) -> None:
        raise NotImplementedError

    def subscribe(self, session: Session, name: str) -> None:
        session.subscriptions[name] = None
        self._subscribers.setdefault(name, {})[session] = None

    def unsubscribe(self, session: Session, name: str) -> None:
        session.subscriptions.pop(name, None)
        subscribers = self._subscribers.get(name)
        if subscribers is not None:
            subscribers.pop(session, None)
            if not subscribers:
                del self._subscribers[name]

    def subscribers(self, name: str) -> dict[Session, None]:
        return self._subscribers.get(name) or {}

    def send(self, sessions: Iterable[Session], frame: bytes) -> None:
        """Hand one pre-encoded frame to each session (queued, never blocking)."""
        sent = 0
        for session in sessions:
            session.ws.send_frame(frame, self.on_written)
            sent += 1
        self.counters["frames_sent"] += sent

    @staticmethod
    def reply(session: Session, obj: object) -> None:
        session.ws.send_text(json.dumps(obj, separators=(",", ":")))

    # -- REST --------------------------------------------------------------------------------------------

    def handle_http(self, request: Request) -> Response | None:
        """The WireServer's HTTP handler: scripted failures first, then the venue's own endpoints."""
        self.counters["rest_requests"] += 1
        fault = self.rest_faults.take()
        if fault is not None:
            logger.info("%s: REST fault %s for %s", self.name, fault.status, request.path)
            return rest_fault_response(fault, self.rest_error_body)
        return self.rest(request)

    def rest(self, request: Request) -> Response | None:
        raise NotImplementedError

    def rest_error_body(self, status: str) -> dict[str, object] | str:
        """The body of a scripted REST failure (one of ``rest_statuses``): a dict for JSON, a string for HTML."""
        raise NotImplementedError

    def delayed(self, response: Response) -> Response:
        """Send a snapshot captured now only after the configured delay; diffs keep flowing meanwhile."""
        if self.snapshot_delay:
            gevent.sleep(self.snapshot_delay)
        return response

    # -- faults every venue supports -----------------------------------------------------------------------

    def count_fault(self, name: str) -> None:
        self.faults[name] += 1
        logger.info("%s: fault %s injected", self.name, name)

    def drop(self) -> int:
        """Reset every connection: no close frame, the client sees the TCP connection die."""
        self.count_fault("drop")
        sessions = list(self.sessions)
        for session in sessions:
            session.ws.abort()
        return len(sessions)

    def close(self, code: int = 1000, reason: str = "") -> int:
        """Close every connection cleanly, with a close frame."""
        self.count_fault("close")
        sessions = list(self.sessions)
        for session in sessions:
            session.ws.close(code, reason)
        return len(sessions)

    def silence(self, on: bool) -> int:
        """Mute (or unmute) every connection, present and future: no data, no pong, TCP left open."""
        self.count_fault("silence")
        self.silenced = on
        for session in self.sessions:
            session.ws.silenced = on
        return len(self.sessions)

    def arm_rest(self, status: str, count: int, retry_after: int) -> int:
        if status in REST_STATUSES and status not in self.rest_statuses:
            raise FaultError(f"rest: {self.name} does not answer {status!r}; it can: {self.rest_statuses}")
        self.rest_faults.arm(status, count, retry_after)
        self.count_fault("rest")
        return self.rest_faults.pending()

    def malformed(self, kind: str, size: int) -> int:
        """Send one malformed frame to every data subscriber; returns how many got it."""
        check_kind(kind, size)
        self.count_fault("malformed")
        return self.send_data(self.malformed_text(kind, size))

    def malformed_text(self, kind: str, size: int) -> str:
        raise NotImplementedError

    def send_data(self, text: str) -> int:
        """Send a text to every data subscriber as the venue frames its data; returns how many got it."""
        raise NotImplementedError

    def junk_rows(self, count: int) -> int:
        """The next ``count`` diffs sent carry rows a venue should not send but does (see each venue's
        ``JUNK``); the true book is unaffected. Returns how many diffs are still to carry them."""
        if count < 1:
            raise FaultError("count must be >= 1")
        self.count_fault("junk_rows")
        self.junk_pending += count
        return self.junk_pending

    def take_junk(self) -> bool:
        """Whether the diff about to be sent carries junk rows (and count it as sent)."""
        if not self.junk_pending:
            return False
        self.junk_pending -= 1
        self.counters["junk_rows_sent"] += 1
        return True

    def lose_change(self, side: str, index: int) -> dict[str, str]:
        """The level ``index`` places from the best on ``side`` gets a new amount (twice the old plus one lot),
        and nothing is sent: no diff, no sequence consumed, so the stream shows no gap.

        A venue's message lost between its matching engine and its stream: a client only learns of it from a
        later snapshot (or a later change of that level). Works while paused, so nothing overwrites it.
        """
        bid = _side_is_bid(side)
        if index < 0:
            raise FaultError(f"index must be >= 0, got {index}")
        levels = self.truth.top_bids(index + 1) if bid else self.truth.top_asks(index + 1)
        if index >= len(levels):
            raise FaultError(f"lose_change: {self.name} has only {len(levels)} {side} levels")
        price, amount = levels[index]
        new = 2 * amount + LOT
        if self.model is not None:
            change = self.model.set_level(bid, price, new)
        else:
            change = BookChange(((price, new),), ()) if bid else BookChange((), ((price, new),))
        self.count_fault("lose_change")
        self.apply_unsent(change)
        return {"price": format_decimal(price), "amount": format_decimal(new), "side": side}

    def set_status(self, status: str) -> dict[str, object]:
        """The market's trading status, as the venue's listing shows it (each venue its own)."""
        raise FaultError(f"{self.name}: no trading status")

    @property
    def listed(self) -> bool:
        """Whether the venue lists the market (see :meth:`set_listed`)."""
        return self.venue.markets.get(self.key) is self

    def set_listed(self, on: bool) -> dict[str, object]:
        """List the market, or take it off the venue's listing: unlisted, it is a pair the venue does not know (not
        in its listing; a snapshot answers as for an unknown symbol; a subscription to it is taken and stays
        silent, as both venues do), while its book moves on, so that a client that takes it up when it is listed
        again must start from a fresh snapshot."""
        self.count_fault("listed")
        was = self.listed
        if on:
            self.venue.markets[self.key] = self
        else:
            self.venue.markets.pop(self.key, None)
        logger.info("%s: %s %s", self.name, self.key, "listed" if on else "taken off the listing")
        return {"listed": on, "was": was}

    def sweep(self, side: str, levels: int) -> dict[str, object]:
        """One ordinary diff (sequence advancing as usual) that removes the best ``levels`` levels of ``side``, as
        a large market order does: the book leaves the range of a client's depth-limited snapshot.

        Only on a model-driven venue, through the model (a replayed recording's own ids would clash).
        """
        bid = _side_is_bid(side)
        if self.model is None:
            raise FaultError(f"sweep: {self.name} is replaying a recording; its ids and stamps are recorded")
        depth = self.truth.bid_depth if bid else self.truth.ask_depth
        if not 1 <= levels < depth:
            raise FaultError(f"levels must be in [1, {depth - 1}] (at least one {side} level stays), got {levels}")
        change = self.model.sweep(bid, levels)
        self.count_fault("sweep")
        self.publish(change)
        best = self.truth.top_bids(1) if bid else self.truth.top_asks(1)
        removed = change.bids if bid else change.asks
        return {"side": side, "removed": len(removed), "from": format_decimal(removed[0][0]),
                "to": format_decimal(removed[-1][0]), "best": format_decimal(best[0][0])}

    def stats(self) -> dict[str, object]:
        return {
            **self.counters,
            "connections_open": len(self.sessions),
            "silenced": self.silenced,
            "rest_faults_pending": self.rest_faults.pending(),
            "junk_rows_pending": self.junk_pending,
            "faults": dict(self.faults),
        }

    def market_stats(self) -> dict[str, object]:
        """This symbol's own stats: :meth:`stats` without the venue-wide ones (:data:`VENUE_STATS`)."""
        return {key: value for key, value in self.stats().items() if key not in VENUE_STATS}


VENUE_STATS = frozenset((
    "connections", "connections_open", "messages_received", "rest_requests", "rest_rate_limited",
    "rest_faults_pending", "silenced", "flood_disconnects", "age_disconnects", "shutdown_notices_sent",
    "max_client_messages", "max_connection_age", "shutdown_notice",
))
"""Stats of a venue's connections and REST endpoint, kept on its default market only; the rest are per market."""


def _side_is_bid(side: str) -> bool:
    if side not in ("bid", "ask"):
        raise FaultError(f"side must be 'bid' or 'ask', got {side!r}")
    return side == "bid"


def now_ms() -> int:
    return int(time.time() * 1000)
