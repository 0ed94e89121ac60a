"""Bitstamp: ``diff_order_book_<pair>`` channels (WebSocket v2), ``GET /api/v2/order_book/<pair>/`` snapshots,
``GET /api/v2/trading-pairs-info/`` for the pairs it lists, and its microtimestamp continuity rule
(docs/protocols.md, "Bitstamp")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeGuard

from orderbook.exchanges.base import ErrorBody, Listing, Venue, load_list, load_object
from orderbook.exchanges.messages import (
    BadMessage,
    BookDiff,
    BookSnapshot,
    Message,
    Notice,
    ReconnectRequest,
    parse_id,
    parse_levels,
)
from orderbook.exchanges.sync import BookSync, Outcome

RATE_LIMIT_CODE = "400.002"
ENABLED = "Enabled"
"""A market's ``trading`` when it trades (ccxt: ``active = trading == 'Enabled'``); anything else leaves it out."""
SPOT = "SPOT"
"""``/api/v2/markets/`` lists perpetuals too (``market_type`` ``PERPETUAL``, ``btcusd-perp``): only spot markets
are books of these pairs."""
CHANNEL_PREFIX = "diff_order_book_"
_RECONNECT = ReconnectRequest("request_reconnect")
_NOTICES = {
    "bts:heartbeat": Notice("heartbeat"),
    "bts:unsubscription_succeeded": Notice("unsubscribed"),
}


class BitstampSync(BookSync):
    """Microtimestamps: the only continuity check is that they strictly increase."""

    def _continuity(self, diff: BookDiff, last_id: int, snapshot_id: int) -> Outcome:
        # The stream can lag behind REST: a diff stamped at or before the snapshot may arrive after it was loaded.
        # The snapshot already reflects it. Only a diff newer than the snapshot but not newer than the last one
        # applied is out of order.
        if diff.final_id <= snapshot_id:
            return Outcome.STALE
        if diff.first_id <= last_id:
            return Outcome.OUT_OF_ORDER
        return Outcome.APPLIED

    def _snapshot_too_old(self, snapshot: BookSnapshot, first: BookDiff, first_pending: BookDiff | None) -> bool:
        # Bitstamp's REST book lags its stream (docs/protocols.md): a snapshot stamped before the first buffered
        # diff misses the changes made between its moment and that diff, and no later diff brings them back.
        # Stamped at or after it, the snapshot and the buffer overlap, and together they miss nothing.
        return snapshot.last_id < first.first_id


class BitstampVenue(Venue):
    name = "bitstamp"
    title = "Bitstamp"
    default_ws_url = "wss://ws.bitstamp.net"
    default_rest_url = "https://www.bitstamp.net"
    snapshot_id_field = "microtimestamp"
    sync_class = BitstampSync
    rest_limit = 1000
    """Requests a minute: Bitstamp allows 400 a second and 10,000 per 10 minutes (docs/protocols.md)."""
    quiet_snapshot_wait = 5.0
    """With no diff this long after the subscription is confirmed, the pair is quiet: the snapshot is fetched
    then and accepted with nothing to compare it with. It is exact provided the REST book lags the stream by
    less than this (0.07 to 2.6 s in the recordings): a change made before the snapshot's moment is in it, and
    one made after the subscription would have sent a diff. The drift audit checks it again."""
    rest_lag_bound = 3.0
    """The REST book lagged the stream by 0.07 to 2.6 s in the recordings (docs/protocols.md)."""
    control_interval = 0.05
    """One ``bts:subscribe`` per channel; Bitstamp states no message rate, so they go at 20 a second."""

    @property
    def stream_url(self) -> str:
        return f"{self.ws_base}/"

    def subscribe_messages(self, symbols: Sequence[str]) -> list[str]:
        return [json.dumps({"event": "bts:subscribe", "data": {"channel": f"{CHANNEL_PREFIX}{symbol.lower()}"}})
                for symbol in symbols]

    def heartbeat_message(self) -> str:
        return '{"event":"bts:heartbeat"}'

    def snapshot_url(self, symbol: str, depth: int | None = None) -> str:
        # The whole book: the endpoint takes no depth (only ``group``, docs/protocols.md), so none is asked for.
        return f"{self.rest_base}/api/v2/order_book/{symbol.lower()}/"

    @property
    def listing_url(self) -> str:
        # "GET /api/v2/trading-pairs-info/ is obsolete and replaced by endpoint api/v2/markets/" (Bitstamp's
        # changelog, quoted in ccxt PR #27893, 2026-02-12; ccxt reads it since PR #27924).
        return f"{self.rest_base}/api/v2/markets/"

    @property
    def listing_fallback_url(self) -> str:
        return f"{self.rest_base}/api/v2/trading-pairs-info/"

    def names(self, symbol: str) -> bool:
        # Pairs are ASCII letters and digits (btcusd): a symbol with any other character has no Bitstamp name.
        return symbol.isascii() and symbol.isalnum()

    def confirms_subscription(self, message: Message) -> TypeGuard[Notice]:
        return type(message) is Notice and message.kind == "subscribed"

    def ready_for_snapshot(self, message: Message) -> bool:
        # Bitstamp's REST book lags its stream (docs/protocols.md): a snapshot is only usable once it can be
        # compared with a buffered diff (BitstampSync's freshness rule), so it is asked for on the first diff.
        # A quiet pair, with no diff to wait for, is handled by quiet_snapshot_wait.
        return type(message) is BookDiff

    def parse_message(self, raw: str | bytes) -> Message:
        # No sequence numbers: a frame that cannot be read may have been a diff, and nothing later would show it.
        frame = load_object(raw, loses_data=True)
        event = frame.get("event")
        if event == "data":
            return self._parse_diff(_symbol(frame.get("channel")), frame.get("data"))
        if type(event) is not str:  # readable, and not a diff (those say "data")
            raise BadMessage("unknown_event", "event is not a string", loses_data=False)
        if event == "bts:subscription_succeeded":
            channel = frame.get("channel")
            # another kind of channel's ack (live_trades_...) names no book of ours
            return Notice("subscribed", _symbol(channel) if str(channel).startswith(CHANNEL_PREFIX) else "")
        notice = _NOTICES.get(event)
        if notice is not None:
            return notice
        if event == "bts:request_reconnect":
            return _RECONNECT
        if event == "bts:error":
            raise BadMessage("exchange_error", f"{frame.get('data')!r:.200}", loses_data=False)
        raise BadMessage("unknown_event", f"event {event!r:.40}", loses_data=False)

    def _parse_diff(self, symbol: str, data: Any) -> BookDiff:
        try:
            if type(data) is not dict:
                raise BadMessage("unknown_shape", f"diff data is not an object: {data!r:.80}", loses_data=True)
            microtimestamp = parse_id(data.get("microtimestamp"), "microtimestamp")
            (bids, ignored_bids), (asks, ignored_asks) = parse_levels(data.get("bids")), parse_levels(data.get("asks"))
        except BadMessage as error:
            error.symbol = symbol
            raise
        return BookDiff(
            microtimestamp,
            microtimestamp,
            microtimestamp / 1e6,
            bids,
            asks,
            ignored_bids + ignored_asks,
            symbol,
        )

    def check_error_body(self, body: dict[str, Any]) -> None:
        # {"status": "error", "reason": "Rate limit exceeded", "code": "400.002"}, sent with HTTP 200; the API
        # spec names the code ``response_code`` (docs/protocols.md), so either is read.
        if body.get("status") == "error":
            code = str(body.get("response_code", body.get("code")))
            raise ErrorBody(f"{code:.20}", f"{body.get('reason')!r:.200}", rate_limited=code == RATE_LIMIT_CODE)

    def unknown_symbol(self, status: int, body: bytes) -> bool:
        return status == 404

    def parse_listing(self, body: bytes) -> Listing:
        """Either shape: ``/api/v2/markets/`` rows name the pair ``market_symbol`` and say ``market_type``;
        ``trading-pairs-info`` rows name it ``url_symbol`` (spot only). Both say ``trading``."""
        statuses: dict[str, str] = {}
        for entry in load_list(body):
            if type(entry) is not dict or entry.get("market_type", SPOT) != SPOT:
                continue
            name = entry.get("market_symbol", entry.get("url_symbol"))
            if type(name) is str:
                statuses[name.upper()] = str(entry.get("trading"))[:20]
        return Listing(statuses, frozenset(symbol for symbol, status in statuses.items() if status == ENABLED))


def _symbol(channel: Any) -> str:
    """``diff_order_book_ethbtc`` -> ``ETHBTC``; a channel of another kind is not ours."""
    if type(channel) is not str or not channel.startswith(CHANNEL_PREFIX):
        raise BadMessage("wrong_channel", f"{channel!r:.60}", loses_data=False)
    return channel[len(CHANNEL_PREFIX):].upper()
