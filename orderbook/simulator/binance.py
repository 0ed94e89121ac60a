"""The Binance spot venue: diff-depth streams (raw, combined, live SUBSCRIBE) and ``GET /api/v3/depth``.

Update ids advance by a variable count per event (``U = previous u + 1``, ``u >= U``) as the real stream's do,
so a client that assumes one id per event is caught. The 1000 ms ``@depth`` stream coalesces each second's
events into one frame (first ``U``, last ``u``, last amount per price). Error replies follow Binance's
documented WebSocket and REST error messages.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from orderbook.book import PriceLevel
from orderbook.prices import parse_decimal
from orderbook.simulator.exchange import Exchange, Session, format_levels, levels_json, now_ms
from orderbook.simulator.faults import FaultError, bad_levels, huge_levels
from orderbook.simulator.market import BookChange
from orderbook.simulator.ratelimit import WeightLimiter, depth_weight
from orderbook.simulator.wire import Request, Response, WebSocket, encode_text_frame

logger = logging.getLogger(__name__)

MAX_DEPTH_LIMIT = 5000
DEFAULT_DEPTH_LIMIT = 100
MAX_CLIENT_MESSAGES_PER_SECOND = 5
AGGREGATE_SECONDS = 1.0

# Stream names Binance knows (the simulator only feeds the diff-depth ones; the rest are accepted and silent).
_STREAM = re.compile(
    r"[a-z0-9]+@(?:depth(?:5|10|20)?(?:@(?:100|1000)ms)?|trade|aggTrade|bookTicker|ticker|miniTicker|avgPrice"
    r"|kline_(?:1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M))"
)
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_SYMBOL_SYNTAX = re.compile(r"[A-Z0-9\-_.]{1,20}")


class RequestError(Exception):
    """A bad live-control frame: answered with ``{"error": {"code", "msg"}, "id"}``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


@dataclass(slots=True)
class _Aggregate:
    """Events of the current second, for the 1000 ms stream."""

    first: int
    last: int
    bids: dict[int, tuple[str, str]]
    asks: dict[int, tuple[str, str]]


@dataclass(frozen=True, slots=True)
class _StaleSnapshot:
    last_update_id: int
    bids: list[PriceLevel]
    asks: list[PriceLevel]


def _error(status: int, code: int, msg: str, used: int | None = None) -> Response:
    headers = {"X-MBX-USED-WEIGHT-1M": str(used)} if used is not None else {}
    return Response.json({"code": code, "msg": msg}, status=status, headers=headers)


class BinanceExchange(Exchange):
    name = "binance"

    def __init__(
        self,
        symbol: str,
        *,
        seed: int,
        snapshot_delay: float = 0.0,
        weight_limit: int = 6000,
    ) -> None:
        super().__init__(snapshot_delay=snapshot_delay)
        self.symbol = symbol
        self._ids = random.Random(f"{seed}:binance:ids")
        self.last_update_id = self._ids.randrange(10**9, 10**10)
        self.limiter = WeightLimiter(weight_limit)
        self._fast = f"{symbol.lower()}@depth@100ms"
        self._slow_names = (f"{symbol.lower()}@depth", f"{symbol.lower()}@depth@1000ms")
        self._aggregate: _Aggregate | None = None
        self._aggregate_due = 0.0
        self._hide = 0
        self._stale: _StaleSnapshot | None = None
        self._stale_count = 0

    def load_recorded(self, snapshot_id: int, bids: list[PriceLevel], asks: list[PriceLevel]) -> None:
        self.load(bids, asks)
        self.last_update_id = snapshot_id

    # -- events ------------------------------------------------------------------------------------------

    def publish(self, change: BookChange) -> None:
        first = self.last_update_id + 1
        last = first + max(1, len(change) + self._ids.randint(-1, 3)) - 1
        self._deliver(first, last, change.bids, change.asks, format_levels(change.bids),
                      format_levels(change.asks), None)

    def publish_recorded(self, payload: dict) -> None:
        """One recorded ``depthUpdate`` event, sent exactly as recorded."""
        bids_text = [(p, a) for p, a in payload["b"]]
        asks_text = [(p, a) for p, a in payload["a"]]
        bids = [(parse_decimal(p), parse_decimal(a)) for p, a in bids_text]
        asks = [(parse_decimal(p), parse_decimal(a)) for p, a in asks_text]
        self._deliver(payload["U"], payload["u"], bids, asks, bids_text, asks_text,
                      json.dumps(payload, separators=(",", ":")))

    def _deliver(
        self,
        first: int,
        last: int,
        bids: Sequence[PriceLevel],
        asks: Sequence[PriceLevel],
        bids_text: list[tuple[str, str]],
        asks_text: list[tuple[str, str]],
        event_text: str | None,
    ) -> None:
        self.truth.apply(bids, asks)
        self.last_update_id = last
        self.counters["events"] += 1
        if self._hide:
            # A gap: the book changed but nobody hears of it. End the 1000 ms frame before it, too.
            self._hide -= 1
            self.counters["events_hidden"] += 1
            self._flush_aggregate()
            return
        if any(self.subscribers(name) for name in self._slow_names):
            self._aggregate_add(first, last, bids, asks, bids_text, asks_text)
        subscribers = self.subscribers(self._fast)
        if subscribers:
            if event_text is None:
                event_text = self._event_text(now_ms(), first, last, bids_text, asks_text)
            self._send_event(self._fast, subscribers, event_text)

    def _event_text(self, e_ms: int, first: int, last: int, bids: list[tuple[str, str]],
                    asks: list[tuple[str, str]]) -> str:
        return (f'{{"e":"depthUpdate","E":{e_ms},"s":"{self.symbol}","U":{first},"u":{last},'
                f'"b":{levels_json(bids)},"a":{levels_json(asks)}}}')

    def _send_event(self, stream: str, subscribers: dict[Session, None], event_text: str) -> None:
        """Encode the raw and the combined form at most once each, whatever the number of subscribers."""
        raw = [s for s in subscribers if not s.combined]
        wrapped = [s for s in subscribers if s.combined]
        if raw:
            self.send(raw, encode_text_frame(event_text.encode()))
        if wrapped:
            self.send(wrapped, encode_text_frame(f'{{"stream":"{stream}","data":{event_text}}}'.encode()))

    def _aggregate_add(
        self,
        first: int,
        last: int,
        bids: Sequence[PriceLevel],
        asks: Sequence[PriceLevel],
        bids_text: list[tuple[str, str]],
        asks_text: list[tuple[str, str]],
    ) -> None:
        agg = self._aggregate
        if agg is None:
            agg = self._aggregate = _Aggregate(first, last, {}, {})
        agg.last = last
        for (price, _), text in zip(bids, bids_text):
            agg.bids[price] = text
        for (price, _), text in zip(asks, asks_text):
            agg.asks[price] = text

    def flush(self, now: float) -> None:
        if now >= self._aggregate_due:
            self._aggregate_due = now + AGGREGATE_SECONDS
            self._flush_aggregate()

    def _flush_aggregate(self) -> None:
        agg, self._aggregate = self._aggregate, None
        if agg is None:
            return
        bids = [agg.bids[p] for p in sorted(agg.bids, reverse=True)]
        asks = [agg.asks[p] for p in sorted(agg.asks)]
        text = self._event_text(now_ms(), agg.first, agg.last, bids, asks)
        for name in self._slow_names:
            subscribers = self.subscribers(name)
            if subscribers:
                self._send_event(name, subscribers, text)

    # -- WebSocket ---------------------------------------------------------------------------------------

    def open_session(self, ws: WebSocket) -> Session:
        """``/ws/<stream>`` raw, ``/stream?streams=a/b`` combined, bare ``/ws`` or ``/stream`` for SUBSCRIBE.

        A stream for an unknown symbol is accepted and stays silent, as Binance does.
        """
        path = ws.path.rstrip("/")
        if path == "/stream" or path.startswith("/stream/"):
            session = Session(ws, combined=True)
            names = ws.query.get("streams", "")
        else:
            session = Session(ws, combined=False)
            names = path[len("/ws/"):] if path.startswith("/ws/") else ""
        for name in filter(None, names.split("/")):
            self.subscribe(session, name)
        return session

    def on_message(self, session: Session, text: str) -> None:
        now = time.monotonic()
        session.recent = [t for t in session.recent if now - t < 1.0]
        session.recent.append(now)
        if len(session.recent) > MAX_CLIENT_MESSAGES_PER_SECOND:
            logger.info("binance: closing %s: more than %d messages per second", session.ws,
                        MAX_CLIENT_MESSAGES_PER_SECOND)
            self.counters["flood_disconnects"] += 1
            session.ws.close(1008, "Too many requests")
            return
        try:
            request = json.loads(text)
        except ValueError as exc:
            line, column = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
            self.reply(session, {"error": {"code": 3, "msg": f"Invalid JSON: expected value at line {line} "
                                                             f"column {column}"}, "id": None})
            return
        request_id = request.get("id") if isinstance(request, dict) else None
        try:
            result = self._control(session, request)
        except RequestError as exc:
            self.reply(session, {"error": {"code": exc.code, "msg": exc.msg}, "id": request_id})
            return
        self.reply(session, {"result": result, "id": request_id})

    def _control(self, session: Session, request: object) -> object:
        if not isinstance(request, dict):
            raise RequestError(2, "Invalid request: expected a JSON object")
        if "method" not in request:
            raise RequestError(2, "Invalid request: missing field `method`")
        request_id = request.get("id")
        if not (request_id is None or (type(request_id) is int and 0 <= request_id < 1 << 63)
                or (isinstance(request_id, str) and len(request_id) <= 36 and request_id.isalnum())):
            raise RequestError(2, "Invalid request: request ID must be an unsigned integer")
        method = request["method"]
        params = request.get("params", [])
        if method not in _METHODS:
            raise RequestError(2, f"Invalid request: unknown variant `{method}`, expected one of "
                               + ", ".join(f"`{m}`" for m in _METHODS))
        if not isinstance(params, list):
            raise RequestError(2, "Invalid request: params must be an array")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not params or not all(isinstance(p, str) and _STREAM.fullmatch(p) for p in params):
                raise RequestError(2, "Invalid request: unknown variable")
            for name in params:
                if method == "SUBSCRIBE":
                    self.subscribe(session, name)
                else:
                    self.unsubscribe(session, name)
            return None
        if method == "LIST_SUBSCRIPTIONS":
            if params:
                raise RequestError(2, "Invalid request: too many parameters")
            return list(session.subscriptions)
        if not params or not isinstance(params[0], str):
            raise RequestError(2, "Invalid request: property name must be a string")
        if params[0] != "combined":
            raise RequestError(0, "Unknown property")
        if method == "GET_PROPERTY":
            return session.combined
        if len(params) != 2 or not isinstance(params[1], bool):
            raise RequestError(1, "Invalid value type: expected Boolean")
        session.combined = params[1]
        return None

    def send_data(self, text: str) -> int:
        """As an event of each depth stream: bare on raw connections, wrapped on combined ones."""
        sent = 0
        for name in (self._fast, *self._slow_names):
            subscribers = self.subscribers(name)
            if subscribers:
                self._send_event(name, subscribers, text)
                sent += len(subscribers)
        return sent

    # -- REST --------------------------------------------------------------------------------------------

    def rest(self, request: Request) -> Response | None:
        path = request.path.rstrip("/")
        if path == "/api/v3/depth":
            return self._depth(request)
        if path == "/api/v3/ping":
            return Response.json({})
        if path == "/api/v3/time":
            return Response.json({"serverTime": now_ms()})
        return Response.json({"code": -1000, "msg": f"Unknown path {request.path}."}, status=404)

    def _depth(self, request: Request) -> Response | None:
        query = request.query
        raw_limit = query.get("limit", "")
        if raw_limit and not raw_limit.isdigit():
            return _error(400, -1100, "Illegal characters found in parameter 'limit'; legal range is "
                                      "'^[0-9]{1,20}$'.")
        limit = min(int(raw_limit), MAX_DEPTH_LIMIT) if raw_limit else DEFAULT_DEPTH_LIMIT
        admission = self.limiter.admit(request.remote[0], depth_weight(max(limit, 1)), time.time())
        if not admission.allowed:
            self.counters["rest_rate_limited"] += 1
            return Response.json(
                {"code": -1003, "msg": f"Too many requests; current limit of IP({request.remote[0]}) is "
                                       f"{self.limiter.limit} request weight per 1 MINUTE. Please use WebSocket "
                                       "Streams for live updates to avoid polling the API."},
                status=429,
                headers={"Retry-After": str(admission.retry_after),
                         "X-MBX-USED-WEIGHT-1M": str(admission.used)},
            )
        used = admission.used
        symbol = query.get("symbol", "")
        if not symbol:
            return _error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
                          used)
        if not _SYMBOL_SYNTAX.fullmatch(symbol):
            return _error(400, -1100, "Illegal characters found in parameter 'symbol'; legal range is "
                                      "'^[A-Z0-9-_.]{1,20}$'.", used)
        if symbol != self.symbol:
            return _error(400, -1121, "Invalid symbol.", used)
        if limit < 1:
            return _error(400, -1100, "Illegal characters found in parameter 'limit'; legal range is "
                                      f"'[1, {MAX_DEPTH_LIMIT}]'.", used)
        body = self._snapshot_text(limit)
        return self.delayed(Response(200, body.encode(), {"Content-Type": "application/json;charset=UTF-8",
                                                          "X-MBX-USED-WEIGHT-1M": str(used)}))

    def _snapshot_text(self, limit: int) -> str:
        if self._stale_count and self._stale is not None:
            self._stale_count -= 1
            self.counters["stale_snapshots_served"] += 1
            stale = self._stale
            last_id, bids, asks = stale.last_update_id, stale.bids[:limit], stale.asks[:limit]
        else:
            last_id = self.last_update_id
            bids, asks = self.truth.top_bids(limit), self.truth.top_asks(limit)
        return (f'{{"lastUpdateId":{last_id},"bids":{levels_json(format_levels(bids))},'
                f'"asks":{levels_json(format_levels(asks))}}}')

    def rest_error_body(self, status: int) -> dict[str, object]:
        if status == 418:
            return {"code": -1003, "msg": f"Way too much request weight used; IP banned until {now_ms() + 120_000}."
                                          " Please use WebSocket Streams for live updates to avoid bans."}
        if status == 429:
            return {"code": -1003, "msg": "Too many requests; please use WebSocket Streams for live updates."}
        return {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}

    # -- Binance faults ------------------------------------------------------------------------------------

    def gap(self, events: int) -> None:
        """The next ``events`` events change the book but are never sent: the stream skips their ids."""
        if events < 1:
            raise FaultError("events must be >= 1")
        self.count_fault("gap")
        self._hide += events

    def stale_snapshot(self, count: int) -> int:
        """The next ``count`` snapshots show the book as it is now, however far the stream has moved on."""
        if count < 1:
            raise FaultError("count must be >= 1")
        self.count_fault("stale_snapshot")
        self._stale = _StaleSnapshot(self.last_update_id, self.truth.bids(), self.truth.asks())
        self._stale_count = count
        return self.last_update_id

    def server_shutdown(self, code: int = 1001) -> int:
        """``{"e":"serverShutdown","E":ms}`` to every connection, then a clean close."""
        self.count_fault("server_shutdown")
        frame = encode_text_frame(f'{{"e":"serverShutdown","E":{now_ms()}}}'.encode())
        sessions = list(self.sessions)
        self.send(sessions, frame)
        for session in sessions:
            session.ws.close(code, "server shutdown")
        return len(sessions)

    def malformed_text(self, kind: str, size: int) -> str:
        if kind == "not_json":
            return '{"e":"depthUpdate","E":' + str(now_ms()) + ',"s":"' + self.symbol + '","U":'
        if kind == "unknown_shape":
            return json.dumps({"e": "somethingElse", "E": now_ms(), "x": [1, 2, 3]}, separators=(",", ":"))
        levels = huge_levels(size) if kind == "huge" else bad_levels(kind)
        next_id = self.last_update_id + 1
        return (f'{{"e":"depthUpdate","E":{now_ms()},"s":"{self.symbol}","U":{next_id},"u":{next_id},'
                f'"b":{json.dumps(levels, separators=(",", ":"))},"a":[]}}')

    def stats(self) -> dict[str, object]:
        return {**super().stats(), "last_update_id": self.last_update_id, "symbol": self.symbol}

