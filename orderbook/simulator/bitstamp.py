"""The Bitstamp venue: WebSocket v2 channels on ``/`` and ``GET /api/v2/order_book/<pair>/``.

There is no sequence number: each diff carries a ``microtimestamp`` that strictly increases per pair, and the
REST snapshot's ``microtimestamp`` is that of the last diff it includes, so a client that drops buffered diffs
with ``microtimestamp <= snapshot.microtimestamp`` is exact. A zero amount is written in each of the spellings the
real venue uses. ``order_book_<pair>`` frames (top 100) are coalesced to one per generation slice.
"""

from __future__ import annotations

import json
import logging
import re
import time

import gevent

from orderbook.book import PriceLevel
from orderbook.prices import format_decimal, parse_decimal
from orderbook.simulator.exchange import Exchange, Session, format_levels, levels_json
from orderbook.simulator.faults import FaultError, bad_levels, huge_levels
from orderbook.simulator.market import TICK, BookChange
from orderbook.simulator.wire import Request, Response, encode_text_frame

logger = logging.getLogger(__name__)

ZERO_SPELLINGS = ("0.00000000", "0.00000", "0")
TOP_LEVELS = 100
_CHANNEL = re.compile(r"(live_trades|live_orders|order_book|detail_order_book|full_order_book|diff_order_book)"
                      r"_([a-z0-9]+)")
_ORDER_BOOK_PATH = re.compile(r"/api/v2/order_book/([a-z0-9]+)/?")


def _error_message(message: str) -> dict[str, object]:
    return {"event": "bts:error", "channel": "", "data": {"code": None, "message": message}}


class BitstampExchange(Exchange):
    name = "bitstamp"

    def __init__(self, pair: str, *, snapshot_delay: float = 0.0) -> None:
        super().__init__(snapshot_delay=snapshot_delay)
        self.pair = pair
        self.microtimestamp = int(time.time() * 1_000_000)
        self._diff = f"diff_order_book_{pair}"
        self._top = f"order_book_{pair}"
        self._top_dirty = False
        self._reorder_pending = False
        self._held: bytes | None = None

    def load_recorded(self, snapshot_id: int, bids: list[PriceLevel], asks: list[PriceLevel]) -> None:
        self.load(bids, asks)
        self.microtimestamp = snapshot_id

    # -- events ------------------------------------------------------------------------------------------

    def _next_microtimestamp(self) -> int:
        self.microtimestamp = max(int(time.time() * 1_000_000), self.microtimestamp + 1)
        return self.microtimestamp

    def _amount_text(self, price: int, amount: int) -> str:
        """Zero is spelled three ways; the choice depends only on the event count and price (deterministic)."""
        if amount:
            return format_decimal(amount)
        return ZERO_SPELLINGS[(self.counters["events"] + price // TICK) % len(ZERO_SPELLINGS)]

    def publish(self, change: BookChange) -> None:
        self.truth.apply(change.bids, change.asks)
        self.counters["events"] += 1
        us = self._next_microtimestamp()
        self._top_dirty = True
        subscribers = self.subscribers(self._diff)
        if not subscribers:
            return
        bids = [(format_decimal(p), self._amount_text(p, a)) for p, a in change.bids]
        asks = [(format_decimal(p), self._amount_text(p, a)) for p, a in change.asks]
        text = (f'{{"data":{{"timestamp":"{us // 1_000_000}","microtimestamp":"{us}",'
                f'"bids":{levels_json(bids)},"asks":{levels_json(asks)}}},'
                f'"channel":"{self._diff}","event":"data"}}')
        self._send_diff(subscribers, encode_text_frame(text.encode()))

    def publish_recorded(self, payload: dict) -> None:
        """One recorded ``diff_order_book`` frame, sent exactly as recorded."""
        data = payload["data"]
        self.truth.apply([(parse_decimal(p), parse_decimal(a)) for p, a in data["bids"]],
                         [(parse_decimal(p), parse_decimal(a)) for p, a in data["asks"]])
        self.counters["events"] += 1
        self.microtimestamp = int(data["microtimestamp"])
        self._top_dirty = True
        subscribers = self.subscribers(self._diff)
        if subscribers:
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
        match = _ORDER_BOOK_PATH.fullmatch(request.path)
        if match is None or match.group(1) != self.pair:
            return Response.json({"status": "error", "reason": "Not found."}, status=404)
        us = self.microtimestamp
        # The real body has spaces after ',' and ':' (unlike the WebSocket frames).
        body = (f'{{"timestamp": "{us // 1_000_000}", "microtimestamp": "{us}", '
                f'"bids": {levels_json(format_levels(self.truth.bids()), ", ")}, '
                f'"asks": {levels_json(format_levels(self.truth.asks()), ", ")}}}')
        return self.delayed(Response(200, body.encode(), {"Content-Type": "application/json"}))

    def rest_error_body(self, status: int) -> dict[str, object]:
        reasons = {429: "Rate limit exceeded.", 418: "Banned.", 500: "Internal server error."}
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
        return {**super().stats(), "microtimestamp": str(self.microtimestamp), "pair": self.pair}
