"""The HTTP control API on loopback: faults, pause/resume, rate, truth and stats. Every answer is JSON.

    GET  /truth?depth=N&symbol=S  one symbol's true books (full, or N levels) and its true merged top N
                               (default 10); symbol: any served symbol, default the default (first) one; a
                               venue that does not serve it has null for its book
    GET  /stats                counters per exchange (its connections, and its default symbol's market), each
                               symbol's own under "markets" (the venue's symbols only); "symbols" lists them
                               all, the default first; "listed": {"binance": [...], "bitstamp": [...]}, what
                               each venue lists (its exchangeInfo, its trading-pairs-info)
    GET  /urls                 the venues' base URLs
    POST /pause, /resume       stop / restart event generation (books frozen while paused)
    POST /rate                 {"binance": r, "bitstamp": r}
    POST /cross                {"symbol": S}: make the venues cross now (default: the default symbol)
    POST /burst                {"exchange": E, "events": N}: N events of E's default symbol queued at once (paused
                               only): a backlog on the socket; answers {"queued_at": monotonic time}
    POST /probe                {"every": N}: every Nth event of each venue is a latency probe (0: none)
    GET  /probes?since=K       probes sent after key K: [[key, exchange, monotonic send time, queued time], ...]
    POST /faults/<name>        {"exchange": ..., params...}; see simulator.FAULT_NAMES

Faults (``exchange`` defaults to the only venue a fault applies to; other parameters have the defaults shown).
Each acts on one symbol's market, ``symbol`` (default: the default symbol; refused on a venue that does not serve
it, and ``cross`` needs both), except the venue-wide ones, which act on a venue's connections or REST endpoint and
take no ``symbol``: drop, close, silence, rest, server_shutdown, request_reconnect.

    drop, close {code: 1000, reason: ""}, silence {on: true}            both venues
    rest {status, count: 1, retry_after: 30}   status 429, 418, 500, hang; 403 (Binance WAF, HTML body);
                                               200_error (Bitstamp: HTTP 200 with {"status": "error", ...})
    malformed {kind, size}                     both venues; kinds in faults.MALFORMED_KINDS
    junk_rows {count: 1}                       both: the next diffs carry a price-0 bid (Bitstamp: and a null row)
    lose_change {side: "bid", index: 2}        both: the true book changes and nothing is sent (no id consumed)
    sweep {side: "bid", levels: 20}            both (model-driven): one diff removes the best levels of a side
    status {status}                            both: the symbol's trading status (Binance TRADING, BREAK, HALT,
                                               END_OF_DAY, CANCEL_ONLY; Bitstamp Enabled, Disabled)
    listed {on: true}                          both: list the symbol, or take it off the listing (then unknown:
                                               -1121 / 404, silent stream, its book moving on)
    gap {events: 5}, stale_snapshot {count: 1}                         Binance
    server_shutdown {close_after: 1.0}         Binance: serverShutdown now, the close that much later
    request_reconnect {after: 3.0}, reorder                            Bitstamp
    rest_lag {seconds}                         Bitstamp: the REST book lags the stream by that much from now on
"""

from __future__ import annotations

import json
import logging

from orderbook.simulator.faults import FaultError
from orderbook.simulator.simulator import Simulator
from orderbook.simulator.wire import Request, Response

logger = logging.getLogger(__name__)


class ControlApi:
    def __init__(self, simulator: Simulator) -> None:
        self._sim = simulator

    def handle(self, request: Request) -> Response:
        try:
            return Response.json(self._route(request))
        except FaultError as exc:
            return Response.json({"error": str(exc)}, status=400)
        except LookupError as exc:
            return Response.json({"error": str(exc)}, status=404)

    def _route(self, request: Request) -> object:
        sim = self._sim
        method, path = request.method, request.path.rstrip("/")
        if method == "GET":
            if path == "/truth":
                return sim.truth(_int_param(request, "depth"), request.query.get("symbol"))
            if path == "/stats":
                return sim.stats()
            if path == "/urls":
                return sim.urls()
            if path == "/probes":
                return sim.probes_sent(_int_param(request, "since") or 0)
        elif method == "POST":
            if path == "/pause":
                sim.pause()
                return {"paused": True}
            if path == "/resume":
                sim.resume()
                return {"paused": False}
            if path == "/rate":
                return {"rates": sim.set_rate(_body(request))}
            if path == "/cross":
                body = _body(request)
                if set(body) - {"symbol"}:
                    raise FaultError(f"cross takes no parameters but symbol, got {sorted(body)}")
                return sim.cross(body.get("symbol"))
            if path == "/burst":
                return sim.burst(_body(request))
            if path == "/probe":
                return sim.set_probe(_body(request).get("every"))
            if path.startswith("/faults/"):
                return sim.inject(path.removeprefix("/faults/"), _body(request))
        raise LookupError(f"no route {method} {request.path}")


def _body(request: Request) -> dict[str, object]:
    if not request.body.strip():
        return {}
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        raise FaultError(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise FaultError("body must be a JSON object")
    return body


def _int_param(request: Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise FaultError(f"{name} must be a positive integer")
    return int(value)
