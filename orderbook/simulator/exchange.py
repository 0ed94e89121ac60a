"""What both simulated venues share: the true book, the connection registry, REST faults and the common faults.

A venue subclass adds its wire protocol: how a book change becomes frames, how client messages are answered,
how its snapshot endpoint looks. Everything runs in one gevent hub, and neither publishing nor capturing a
snapshot yields, so a snapshot always reflects exactly the changes already queued to every client.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence

import gevent

from orderbook.book import OrderBook, PriceLevel
from orderbook.prices import format_decimal
from orderbook.simulator.faults import RestFaults, check_kind, rest_fault_response
from orderbook.simulator.market import BookChange
from orderbook.simulator.wire import Request, Response, WebSocket

logger = logging.getLogger(__name__)


def levels_json(levels: Iterable[tuple[str, str]], separator: str = ",") -> str:
    """``[["p","a"],...]`` from already formatted strings (decimal digits only, so no escaping is needed)."""
    return "[" + separator.join(f'["{price}"{separator}"{amount}"]' for price, amount in levels) + "]"


def format_levels(levels: Sequence[PriceLevel]) -> list[tuple[str, str]]:
    return [(format_decimal(price), format_decimal(amount)) for price, amount in levels]


class Session:
    """One client connection and what it is subscribed to (stream or channel names, in subscription order)."""

    __slots__ = ("ws", "subscriptions", "combined", "recent")

    def __init__(self, ws: WebSocket, combined: bool = False) -> None:
        self.ws = ws
        self.subscriptions: dict[str, None] = {}
        self.combined = combined
        self.recent: list[float] = []


class Exchange:
    """Base of the two venues. ``name`` is the exchange's name on the wire of the product (``binance``...)."""

    name = ""

    def __init__(self, *, snapshot_delay: float = 0.0) -> None:
        self.truth = OrderBook()
        self.snapshot_delay = snapshot_delay
        self.silenced = False
        self.rest_faults = RestFaults()
        self.sessions: dict[Session, None] = {}
        self._subscribers: dict[str, dict[Session, None]] = {}
        self.counters: Counter[str] = Counter(dict.fromkeys(
            ("events", "frames_sent", "connections", "messages_received", "rest_requests"), 0))
        self.faults: Counter[str] = Counter()

    # -- the book ----------------------------------------------------------------------------------------

    def load(self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel]) -> None:
        self.truth.load(bids, asks)

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
            session.ws.send_frame(frame)
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

    def rest_error_body(self, status: int) -> dict[str, object]:
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

    def stats(self) -> dict[str, object]:
        return {
            **self.counters,
            "connections_open": len(self.sessions),
            "silenced": self.silenced,
            "rest_faults_pending": self.rest_faults.pending(),
            "faults": dict(self.faults),
        }


def now_ms() -> int:
    return int(time.time() * 1000)
