"""The Bitstamp venue: WebSocket v2 channels on ``/``, ``GET /api/v2/order_book/<pair>/`` and the listing,
``GET /api/v2/trading-pairs-info/``.

There is no sequence number: each diff carries a ``microtimestamp`` that strictly increases per pair, and the
REST snapshot's ``microtimestamp`` is that of the last diff it includes, so a client that drops buffered diffs
with ``microtimestamp <= snapshot.microtimestamp`` is exact. A zero amount is written in each of the spellings the
real venue uses. ``order_book_<pair>`` frames (top 100) are coalesced to one per generation slice.

Two real habits can be switched on: the REST book lagging the stream (``rest_lag``: the snapshot is the book as it
was that long ago, with that moment's microtimestamp), and rows the venue should not send but does (a price-0
bid and a ``null`` row at the end of the bids, in snapshots with ``junk_rows``, in diffs with the fault).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import deque
from collections.abc import Iterable, Sequence

import gevent

from orderbook.book import VenueBook, PriceLevel
from orderbook.prices import format_decimal, parse_decimal
from orderbook.simulator.config import MAX_REST_LAG
from orderbook.simulator.exchange import Exchange, Session, format_levels, format_levels_pausing, levels_json
from orderbook.simulator.faults import JUNK_ROW, FaultError, bad_levels, huge_levels
from orderbook.simulator.listing import BITSTAMP_TRADING, markets, trading_pairs_info
from orderbook.simulator.market import TICK, BookChange
from orderbook.simulator.wire import Request, Response, encode_text_frame

logger = logging.getLogger(__name__)

ZERO_SPELLINGS = ("0.00000000", "0.00000", "0")
TOP_LEVELS = 100
_CHANNEL = re.compile(r"(live_trades|live_orders|order_book|detail_order_book|full_order_book|diff_order_book)"
                      r"_([a-z0-9]+)")
_ORDER_BOOK_PATH = re.compile(r"/api/v2/order_book/([a-z0-9]+)/?")
_PAIRS_INFO_PATH = re.compile(r"/api/v2/trading-pairs-info/?")
_MARKETS_PATH = re.compile(r"/api/v2/markets/?")
LAG_MAX_PENDING = 1_000_000
"""Changes kept for the lagged REST book at most (some 10 s at 100,000 events/s); beyond that the oldest are
applied early, so the lag shrinks rather than memory growing."""


def _with_junk(levels: str, separator: str = ",") -> str:
    """A levels array (already ending with the price-0 row) closed with a ``null`` row, as Bitstamp has sent."""
    return f"{levels[:-1]}{separator}null]"


def _error_message(message: str) -> dict[str, object]:
    return {"event": "bts:error", "channel": "", "data": {"code": None, "message": message}}


class BitstampExchange(Exchange):
    name = "bitstamp"
    rest_statuses = ("429", "418", "500", "200_error", "hang")
    """No ``403``: what Bitstamp's own firewall answers is not known here."""

    def __init__(self, pair: str, *, snapshot_delay: float = 0.0, rest_lag: float = 0.0,
                 junk_rows: bool = False, listing: str = "both") -> None:
        """``listing``: the listing endpoints answered (``both``, ``markets``, ``trading-pairs-info``)."""
        super().__init__(snapshot_delay=snapshot_delay)
        self.pair = pair
        self.listing = listing
        self.trading = "Enabled"
        """The market's ``trading``, set by the ``status`` control operation: "Disabled" stops its channel."""
        self.microtimestamp = int(time.time() * 1_000_000)
        self.junk_rows_in_snapshots = junk_rows
        self.counters["junk_snapshots_sent"] = 0
        self.clock = time.monotonic
        """The clock of the REST lag (replaceable in tests)."""
        self._diff = f"diff_order_book_{pair}"
        self._top = f"order_book_{pair}"
        self._top_dirty = False
        self._reorder_pending = False
        self._held: bytes | None = None
        # The lagged REST book: None while the lag is 0 (the REST book is the truth). Otherwise every change to the
        # truth is queued with its time and microtimestamp, and applied to the lagged book once it is ``rest_lag``
        # old: O(1) amortized per change, memory bounded by the changes of the last ``rest_lag`` seconds.
        self.rest_lag = 0.0
        self._lagged: VenueBook | None = None
        self._lagged_us = 0
        self._lag_queue: deque[tuple[float, Sequence[PriceLevel], Sequence[PriceLevel], int]] = deque()
        self.set_rest_lag(rest_lag)
        self.markets[pair] = self

    @property
    def key(self) -> str:
        return self.pair

    def load(self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel]) -> None:
        super().load(bids, asks)
        self._restart_lag()

    def load_recorded(self, snapshot_id: int, bids: list[PriceLevel], asks: list[PriceLevel]) -> None:
        self.microtimestamp = snapshot_id
        self.load(bids, asks)

    # -- the lagged REST book ----------------------------------------------------------------------------

    def set_rest_lag(self, seconds: float) -> float:
        """Serve the REST book as it was ``seconds`` ago from now on (0: the current book).

        Switched on, the lagged book starts as the book of this moment, so for the first ``seconds`` the snapshot
        is the book at the switch (less old than the lag). A longer lag than before likewise takes effect as time
        passes (the lagged book never goes back); a shorter one at once.
        """
        if not 0 <= seconds <= MAX_REST_LAG:
            raise FaultError(f"seconds must be in [0, {MAX_REST_LAG:g}], got {seconds}")
        previous, self.rest_lag = self.rest_lag, float(seconds)
        if not seconds:
            self._lagged = None
            self._lag_queue.clear()
        elif not previous:
            self._restart_lag()
        return self.rest_lag

    def _restart_lag(self) -> None:
        self._lag_queue.clear()
        if self.rest_lag:
            self._lagged = VenueBook()
            self._lagged.load(self.truth.bids(), self.truth.asks())
            self._lagged_us = self.microtimestamp

    def _apply(self, bids: Sequence[PriceLevel], asks: Sequence[PriceLevel], us: int) -> None:
        """Apply one change to the true book (stamped ``us``), and queue it for the lagged REST book."""
        self.truth.apply(bids, asks)
        if self._lagged is not None:
            now = self.clock()
            self._lag_queue.append((now, bids, asks, us))
            self._catch_up(now)

    def _catch_up(self, now: float) -> None:
        """Apply to the lagged book every queued change at least ``rest_lag`` old."""
        lagged, queue = self._lagged, self._lag_queue
        assert lagged is not None
        horizon = now - self.rest_lag
        while queue and (queue[0][0] <= horizon or len(queue) > LAG_MAX_PENDING):
            _, bids, asks, us = queue.popleft()
            lagged.apply(bids, asks)
            self._lagged_us = us

    def apply_unsent(self, change: BookChange) -> None:
        self._apply(change.bids, change.asks, self.microtimestamp)

    # -- events ------------------------------------------------------------------------------------------

    def _next_microtimestamp(self) -> int:
        self.microtimestamp = max(int(time.time() * 1_000_000), self.microtimestamp + 1)
        return self.microtimestamp

    def _amount_text(self, price: int, amount: int) -> str:
        """Zero is spelled three ways; the choice depends only on the event count and price (deterministic)."""
        if amount:
            return format_decimal(amount)
        return ZERO_SPELLINGS[(self.counters["events"] + price // TICK) % len(ZERO_SPELLINGS)]

    def set_status(self, status: str) -> dict[str, object]:
        """Enable or disable the market (``trading``, as the listing shows it). A disabled market's channel sends
        nothing (**Unverified**: what Bitstamp's stream does then is not documented; silence is the safe guess),
        while its book moves on; its order book endpoint still answers."""
        if status not in BITSTAMP_TRADING:
            raise FaultError(f"status must be one of {', '.join(BITSTAMP_TRADING)}, got {status!r}")
        self.count_fault("status")
        previous, self.trading = self.trading, status
        logger.info("bitstamp: %s: %s -> %s", self.pair, previous, status)
        return {"status": status, "was": previous}

    def publish(self, change: BookChange) -> None:
        if self.trading != "Enabled" or not self.listed:
            self.apply_unsent(change)
            return
        us = self._next_microtimestamp()
        self._apply(change.bids, change.asks, us)
        self.counters["events"] += 1
        self._top_dirty = True
        subscribers = self.subscribers(self._diff)
        if not subscribers:
            return
        bids = [(format_decimal(p), self._amount_text(p, a)) for p, a in change.bids]
        asks = [(format_decimal(p), self._amount_text(p, a)) for p, a in change.asks]
        bids_json = _with_junk(levels_json([*bids, JUNK_ROW])) if self.take_junk() else levels_json(bids)
        text = (f'{{"data":{{"timestamp":"{us // 1_000_000}","microtimestamp":"{us}",'
                f'"bids":{bids_json},"asks":{levels_json(asks)}}},'
                f'"channel":"{self._diff}","event":"data"}}')
        self._send_diff(subscribers, encode_text_frame(text.encode()))

    def publish_recorded(self, payload: dict) -> None:
        """One recorded ``diff_order_book`` frame, sent exactly as recorded (junk rows added if armed)."""
        data = payload["data"]
        us = int(data["microtimestamp"])
        self.microtimestamp = us
        self._apply([(parse_decimal(p), parse_decimal(a)) for p, a in data["bids"]],
                    [(parse_decimal(p), parse_decimal(a)) for p, a in data["asks"]], us)
        self.counters["events"] += 1
        self._top_dirty = True
        subscribers = self.subscribers(self._diff)
        if subscribers:
            if self.take_junk():
                payload = {**payload, "data": {**data, "bids": [*data["bids"], list(JUNK_ROW), None]}}
            self._send_diff(subscribers, encode_text_frame(json.dumps(payload, separators=(",", ":")).encode()))

    def _send_diff(self, subscribers: dict[Session, None], frame: bytes) -> None:
        """Send a diff, or hold it back one frame when a reorder fault is armed."""
        if self._reorder_pending:
            if self._held is None:
                self._held = frame
                return
            held, self._held, self._reorder_pending = self._held, None, False
            self.send(subscribers, frame)
            self.send(subscribers, held)
            self.counters["diffs_reordered"] += 2
            return
        self.send(subscribers, frame)

    def flush(self, now: float) -> None:
        if not self._top_dirty:
            return
        self._top_dirty = False
        subscribers = self.subscribers(self._top)
        if not subscribers:
            return
        us = self.microtimestamp
        text = (f'{{"data":{{"timestamp":"{us // 1_000_000}","microtimestamp":"{us}",'
                f'"bids":{levels_json(format_levels(self.truth.top_bids(TOP_LEVELS)))},'
                f'"asks":{levels_json(format_levels(self.truth.top_asks(TOP_LEVELS)))}}},'
                f'"channel":"{self._top}","event":"data"}}')
        self.send(subscribers, encode_text_frame(text.encode()))

    # -- WebSocket ---------------------------------------------------------------------------------------

    def on_message(self, session: Session, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            self.reply(session, _error_message("Bad request."))
            return
        event = message.get("event") if isinstance(message, dict) else None
        if event == "bts:heartbeat":
            self.reply(session, {"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}})
            return
        if event not in ("bts:subscribe", "bts:unsubscribe"):
            self.reply(session, _error_message("Bad request."))
            return
        data = message.get("data")
        channel = data.get("channel") if isinstance(data, dict) else None
        if not isinstance(channel, str) or not _CHANNEL.fullmatch(channel):
            self.reply(session, _error_message("Invalid channel provided."))
            return
        # An unknown pair is accepted and then stays silent, as the real venue does.
        if event == "bts:subscribe":
            self.subscribe(session, channel)
            reply = "bts:subscription_succeeded"
        else:
            self.unsubscribe(session, channel)
            reply = "bts:unsubscription_succeeded"
        self.reply(session, {"event": reply, "channel": channel, "data": {}})

    def send_data(self, text: str) -> int:
        sessions = {**self.subscribers(self._diff), **self.subscribers(self._top)}
        self.send(sessions, encode_text_frame(text.encode()))
        return len(sessions)

    # -- REST --------------------------------------------------------------------------------------------

    def rest(self, request: Request) -> Response | None:
        pairs = {pair: market.trading for pair, market in self.markets.items() if isinstance(market, BitstampExchange)}
        if _MARKETS_PATH.fullmatch(request.path) and self.listing != "trading-pairs-info":
            # The listing since 2026: every pair this venue serves, then a perpetual (see .listing).
            return Response(200, json.dumps(markets(pairs)).encode(), {"Content-Type": "application/json"})
        if _PAIRS_INFO_PATH.fullmatch(request.path) and self.listing != "markets":
            # The obsolete listing, until the venue retires it. As spaced as the order book.
            return Response(200, json.dumps(trading_pairs_info(pairs)).encode(),
                            {"Content-Type": "application/json"})
        match = _ORDER_BOOK_PATH.fullmatch(request.path)
        market = self.markets.get(match.group(1)) if match is not None else None
        if not isinstance(market, BitstampExchange):
            return Response.json({"status": "error", "reason": "Not found."}, status=404)
        return self.delayed(market._snapshot_response())

    def _snapshot_response(self) -> Response:
        """This pair's REST book: the lagged one when a lag is set."""
        if self._lagged is not None:
            self._catch_up(self.clock())
            book, us = self._lagged, self._lagged_us
        else:
            book, us = self.truth, self.microtimestamp
        captured = book.bids(), book.asks()  # copies: the book moves on while the body is written
        bid_rows, ask_rows = map(format_levels_pausing, captured)
        # The real body has spaces after ',' and ':' (unlike the WebSocket frames).
        bids = levels_json(bid_rows, ", ")
        if self.junk_rows_in_snapshots:
            self.counters["junk_snapshots_sent"] += 1
            bids = _with_junk(levels_json([*bid_rows, JUNK_ROW], ", "), ", ")
        body = (f'{{"timestamp": "{us // 1_000_000}", "microtimestamp": "{us}", '
                f'"bids": {bids}, "asks": {levels_json(ask_rows, ", ")}}}')
        return Response(200, body.encode(), {"Content-Type": "application/json"})

    def rest_error_body(self, status: str) -> dict[str, object] | str:
        if status == "200_error":
            # Sent with HTTP 200: "400.002" is the rate-limit code (docs/protocols.md).
            return {"status": "error", "reason": "Rate limit exceeded", "code": "400.002"}
        reasons = {"429": "Rate limit exceeded.", "418": "Banned.", "500": "Internal server error."}
        return {"status": "error", "reason": reasons.get(status, "Error."), "code": f"API{status}"}

    # -- Bitstamp faults -----------------------------------------------------------------------------------

    def request_reconnect(self, after: float) -> int:
        """``bts:request_reconnect`` to every connection, then a clean close ``after`` seconds later."""
        if after < 0:
            raise FaultError("after must be >= 0")
        self.count_fault("request_reconnect")
        sessions = list(self.sessions)
        self.send(sessions, encode_text_frame(b'{"event":"bts:request_reconnect","channel":"","data":""}'))
        gevent.spawn_later(after, self._close_sessions, sessions)
        return len(sessions)

    @staticmethod
    def _close_sessions(sessions: list[Session]) -> None:
        for session in sessions:
            session.ws.close(1000, "reconnect requested")

    def rest_lag_fault(self, seconds: float) -> float:
        """Change the REST lag at run time (see :meth:`set_rest_lag`), so a test can switch it on and off."""
        lag = self.set_rest_lag(seconds)
        self.count_fault("rest_lag")
        return lag

    def reorder(self) -> None:
        """The next two diffs are delivered in swapped order (the true book is unaffected)."""
        self.count_fault("reorder")
        self._reorder_pending = True

    def malformed_text(self, kind: str, size: int) -> str:
        if kind == "not_json":
            return '{"data":{"timestamp":"' + str(self.microtimestamp // 1_000_000) + '","bids":[['
        if kind == "unknown_shape":
            return json.dumps({"event": "data", "channel": self._diff, "data": {"something": "else"}},
                              separators=(",", ":"))
        levels = huge_levels(size) if kind == "huge" else bad_levels(kind)
        us = self._next_microtimestamp()
        return json.dumps({"data": {"timestamp": str(us // 1_000_000), "microtimestamp": str(us),
                                    "bids": levels, "asks": []},
                           "channel": self._diff, "event": "data"}, separators=(",", ":"))

    def stats(self) -> dict[str, object]:
        if self._lagged is not None:
            self._catch_up(self.clock())
        return {**super().stats(), "microtimestamp": str(self.microtimestamp), "pair": self.pair,
                "rest_lag": self.rest_lag, "rest_lag_pending": len(self._lag_queue),
                "rest_microtimestamp": str(self._lagged_us if self._lagged is not None else self.microtimestamp)}
