"""Binance spot: the ``<symbol>@depth@100ms`` diff stream and ``GET /api/v3/depth`` (docs/protocols.md, "Binance spot")."""

from __future__ import annotations

from typing import Any

from orderbook.exchanges.base import ExchangeError, ExchangeProtocol, load_json, load_object
from orderbook.exchanges.messages import (
    BadMessage,
    BookDiff,
    Message,
    Notice,
    ReconnectRequest,
    parse_id,
    parse_levels,
)
from orderbook.exchanges.sync import BinanceSync

UNKNOWN_SYMBOL = -1121
_SHUTDOWN = ReconnectRequest("server_shutdown")
_METHOD_RESULT = Notice("method_result")


class BinanceProtocol(ExchangeProtocol):
    name = "binance"
    snapshot_id_field = "lastUpdateId"
    sync_class = BinanceSync
    rest_limit = 6000
    """Request weight a minute per IP (docs/protocols.md)."""
    used_weight_header = "X-MBX-USED-WEIGHT-1M"
    snapshot_names_an_event = True
    status_meanings = {
        403: "blocked by Binance's web application firewall",
        418: "IP banned for repeated rate-limit violations",
        429: "request weight limit exceeded",
    }

    def __init__(self, symbol: str, ws_url: str, rest_url: str, snapshot_limit: int = 1000) -> None:
        super().__init__(symbol, ws_url, rest_url)
        if not 1 <= snapshot_limit <= 5000:
            raise ValueError("the Binance snapshot limit must be between 1 and 5000")
        self.snapshot_limit = snapshot_limit
        self.snapshot_depth = snapshot_limit

    @property
    def snapshot_weight(self) -> int:
        """``GET /api/v3/depth``'s weight by limit band (docs/protocols.md)."""
        limit = self.snapshot_limit
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250

    @property
    def stream_url(self) -> str:
        return f"{self.ws_base}/ws/{self.symbol.lower()}@depth@100ms"

    @property
    def snapshot_url(self) -> str:
        return f"{self.rest_base}/api/v3/depth?symbol={self.symbol}&limit={self.snapshot_limit}"

    def ready_for_snapshot(self, message: Message) -> bool:
        # Only a buffered event lets a snapshot be checked (lastUpdateId + 1 >= its U): one fetched earlier could
        # be older than the stream and, in a quiet market, be served wrong with nothing to show it (step 1-3).
        return type(message) is BookDiff

    def parse_message(self, raw: str | bytes) -> Message:
        # A lost frame shows as a gap in the update ids, so an unreadable frame does not by itself lose the book.
        event = load_object(raw, loses_data=False)
        if "data" in event and "stream" in event:  # the combined-stream envelope
            event = event["data"]
            if type(event) is not dict:
                raise BadMessage("unknown_shape", f"stream data is not an object: {raw!r:.80}", loses_data=False)
        kind = event.get("e")
        if kind == "depthUpdate":
            return self._parse_diff(event)
        if kind == "serverShutdown":
            return _SHUTDOWN
        if "id" in event and "result" in event:
            return _METHOD_RESULT
        if "error" in event:
            raise BadMessage("exchange_error", f"{event['error']!r:.200}", loses_data=False)
        raise BadMessage("unknown_event", f"event {kind!r:.40}", loses_data=False)

    def _parse_diff(self, event: dict[str, Any]) -> BookDiff:
        if event.get("s") != self.symbol:
            raise BadMessage("wrong_symbol", f"{event.get('s')!r:.40}", loses_data=False)
        first_id, final_id = parse_id(event.get("U"), "U"), parse_id(event.get("u"), "u")
        if first_id > final_id:
            raise BadMessage("bad_id", f"U {first_id} > u {final_id}", loses_data=True)
        (bids, ignored_bids), (asks, ignored_asks) = parse_levels(event.get("b")), parse_levels(event.get("a"))
        return BookDiff(
            first_id,
            final_id,
            parse_id(event.get("E"), "E") / 1e3,
            bids,
            asks,
            ignored_bids + ignored_asks,
        )

    def snapshot_error(self, status: int, body: bytes) -> ExchangeError | None:
        if status != 400:
            return None
        try:
            error = load_json(body, loses_data=False)
        except BadMessage:
            return None
        if type(error) is dict and error.get("code") == UNKNOWN_SYMBOL:
            return ExchangeError(f"Binance does not know the symbol {self.symbol}: {error.get('msg')}")
        return None
