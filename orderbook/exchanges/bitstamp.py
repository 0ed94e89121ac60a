"""Bitstamp: the ``diff_order_book_<pair>`` channel (WebSocket v2) and ``GET /api/v2/order_book/<pair>/``."""

from __future__ import annotations

import json
from typing import Any

from orderbook.exchanges.base import ErrorBody, ExchangeError, ExchangeProtocol, load_object
from orderbook.exchanges.messages import (
    BadMessage,
    BookDiff,
    Message,
    Notice,
    ReconnectRequest,
    parse_id,
    parse_levels,
)
from orderbook.exchanges.sync import BitstampSync

RATE_LIMIT_CODE = "400.002"
_RECONNECT = ReconnectRequest("request_reconnect")
_SUBSCRIBED = Notice("subscribed")
_NOTICES = {
    "bts:subscription_succeeded": _SUBSCRIBED,
    "bts:heartbeat": Notice("heartbeat"),
    "bts:unsubscription_succeeded": Notice("unsubscribed"),
}


class BitstampProtocol(ExchangeProtocol):
    name = "bitstamp"
    snapshot_id_field = "microtimestamp"
    sync_class = BitstampSync
    rest_limit = 1000
    """Requests a minute: Bitstamp allows 400 a second and 10,000 per 10 minutes (docs/protocols.md)."""
    quiet_snapshot_wait = 5.0
    """With no diff this long after the subscription is confirmed, the pair is quiet: the snapshot is fetched
    then and accepted with nothing to compare it with. It is exact provided the REST book lags the stream by
    less than this (0.07 to 2.6 s in the recordings): a change made before the snapshot's moment is in it, and
    one made after the subscription would have sent a diff. The drift audit checks it again."""

    def __init__(self, symbol: str, ws_url: str, rest_url: str) -> None:
        super().__init__(symbol, ws_url, rest_url)
        self.pair = self.symbol.lower()
        self.channel = f"diff_order_book_{self.pair}"

    @property
    def stream_url(self) -> str:
        return f"{self.ws_base}/"

    @property
    def snapshot_url(self) -> str:
        return f"{self.rest_base}/api/v2/order_book/{self.pair}/"

    def subscribe_messages(self) -> list[str]:
        return [json.dumps({"event": "bts:subscribe", "data": {"channel": self.channel}})]

    def heartbeat_message(self) -> str:
        return '{"event":"bts:heartbeat"}'

    def confirms_subscription(self, message: Message) -> bool:
        return message is _SUBSCRIBED

    def ready_for_snapshot(self, message: Message) -> bool:
        # Bitstamp's REST book lags its stream (docs/protocols.md): a snapshot is only usable once it can be
        # compared with a buffered diff (BitstampSync's freshness rule), so it is asked for on the first diff.
        # A quiet pair, with no diff to wait for, is handled by QUIET_SNAPSHOT_WAIT.
        return type(message) is BookDiff

    def parse_message(self, raw: str | bytes) -> Message:
        # No sequence numbers: a frame that cannot be read may have been a diff, and nothing later would show it.
        frame = load_object(raw, loses_data=True)
        event = frame.get("event")
        if event == "data":
            if frame.get("channel") != self.channel:
                raise BadMessage("wrong_channel", f"{frame.get('channel')!r:.60}", loses_data=False)
            return self._parse_diff(frame.get("data"))
        if type(event) is not str:  # readable, and not a diff (those say "data")
            raise BadMessage("unknown_event", "event is not a string", loses_data=False)
        notice = _NOTICES.get(event)
        if notice is not None:
            return notice
        if event == "bts:request_reconnect":
            return _RECONNECT
        if event == "bts:error":
            raise BadMessage("exchange_error", f"{frame.get('data')!r:.200}", loses_data=False)
        raise BadMessage("unknown_event", f"event {event!r:.40}", loses_data=False)

    def _parse_diff(self, data: Any) -> BookDiff:
        if type(data) is not dict:
            raise BadMessage("unknown_shape", f"diff data is not an object: {data!r:.80}", loses_data=True)
        microtimestamp = parse_id(data.get("microtimestamp"), "microtimestamp")
        (bids, ignored_bids), (asks, ignored_asks) = parse_levels(data.get("bids")), parse_levels(data.get("asks"))
        return BookDiff(
            microtimestamp,
            microtimestamp,
            microtimestamp / 1e6,
            bids,
            asks,
            ignored_bids + ignored_asks,
        )

    def check_error_body(self, body: dict[str, Any]) -> None:
        # {"status": "error", "reason": "Rate limit exceeded", "code": "400.002"}, sent with HTTP 200; the API
        # spec names the code ``response_code`` (docs/protocols.md), so either is read.
        if body.get("status") == "error":
            code = str(body.get("response_code", body.get("code")))
            raise ErrorBody(f"{code:.20}", f"{body.get('reason')!r:.200}", rate_limited=code == RATE_LIMIT_CODE)

    def snapshot_error(self, status: int, body: bytes) -> ExchangeError | None:
        if status == 404:
            return ExchangeError(f"Bitstamp does not know the pair {self.pair} (HTTP 404)")
        return None
