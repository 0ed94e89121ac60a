"""Binance spot: ``<symbol>@depth@100ms`` diff streams on combined-stream connections, ``GET /api/v3/depth``
snapshots, ``GET /api/v3/exchangeInfo`` for the symbols it lists, and its update-id continuity rule
(docs/protocols.md, "Binance spot")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from orderbook.exchanges.base import Listing, Venue, VenueOption, load_json, load_object
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

UNKNOWN_SYMBOL = -1121
STATUS_MISMATCH = -1220
"""``-1220 SYMBOL_DOES_NOT_MATCH_STATUS``: the snapshot asks ``symbolStatus=TRADING`` (since 2025-10-28), so a
symbol that has stopped trading answers this instead of a book (docs/protocols.md)."""
NOT_LISTED = frozenset({UNKNOWN_SYMBOL, STATUS_MISMATCH})
TRADING = "TRADING"
"""The only status whose book is executable liquidity: ``BREAK``, ``HALT``, ``END_OF_DAY`` and ``CANCEL_ONLY``
(since 2026-07-07) take no new orders, so nothing in the book can be traded against (docs/protocols.md)."""
STREAMS_PER_SUBSCRIBE = 100
"""Streams named in one SUBSCRIBE: Binance states no limit, but a SUBSCRIBE of 437 streams has been seen to fail
silently (ccxws#161), so they go in batches well below that."""
DEPTH_WEIGHTS = ((100, 5), (500, 25), (1000, 50), (5000, 250))
"""``GET /api/v3/depth``'s weight by limit band: (the band's highest limit, its weight) (docs/protocols.md)."""
FIRST_SNAPSHOT_MARGIN = 2
"""A book's first snapshot holds at least this many times the levels served: the served levels, and as many again
beyond them, so that the market must move through every served level on one side before too few remain inside
the snapshot's edge (a rebuild, BookSync._check_book) while the book waits to be deepened."""
_SHUTDOWN = ReconnectRequest("server_shutdown")
_METHOD_RESULT = Notice("method_result")


def depth_weight(limit: int) -> int:
    """``GET /api/v3/depth``'s weight for ``limit`` levels a side (1-5000)."""
    return next((weight for top, weight in DEPTH_WEIGHTS if limit <= top), DEPTH_WEIGHTS[-1][1])


def first_snapshot_limit(served: int, kept: int) -> int:
    """The ``limit`` of a book's first snapshot, when ``served`` levels a side are served and ``kept`` are kept.

    A weight band costs the same whatever the limit inside it, so the first snapshot takes the whole of the
    lightest band that holds :data:`FIRST_SNAPSHOT_MARGIN` times the served levels (100 levels, weight 5, for the
    default 10 served; ten of them cost what one 1,000-level snapshot does), and never more than is kept. The book
    is served from it, its levels vouched for inside its edges, and deepened to ``kept`` afterwards.
    """
    wanted = FIRST_SNAPSHOT_MARGIN * served
    top = next((top for top, _ in DEPTH_WEIGHTS if top >= wanted), DEPTH_WEIGHTS[-1][0])
    return min(top, kept)


class BinanceSync(BookSync):
    """Update ids: each event covers ids ``U..u``; the book's id is the last ``u`` applied."""

    def _continuity(self, diff: BookDiff, last_id: int, snapshot_id: int) -> Outcome:
        if diff.final_id < last_id:
            return Outcome.STALE
        if diff.first_id > last_id + 1:
            return Outcome.GAP
        return Outcome.APPLIED

    def _snapshot_too_old(self, snapshot: BookSnapshot, first: BookDiff, first_pending: BookDiff | None) -> bool:
        # The first event kept must satisfy U <= lastUpdateId + 1 <= u; anything later leaves ids no one has.
        # (The official text says "lastUpdateId < U"; lastUpdateId == U - 1 is the exact fit step 4 asks for.)
        return first_pending is not None and first_pending.first_id > snapshot.last_id + 1


class BinanceVenue(Venue):
    name = "binance"
    title = "Binance"
    default_ws_url = "wss://stream.binance.com:9443"
    default_rest_url = "https://api.binance.com"
    options = (VenueOption("snapshot-limit", 1000, 1, 5000,
                           "levels per side of each Binance book kept: a book is served from a first snapshot sized to "
                           "--depth (100 levels, weight 5, up to --depth 50) and deepened to this afterwards; a "
                           "snapshot's weight grows with it (5 up to 100, 25 up to 500, 50 up to 1000, 250 above)"),)
    snapshot_depth_option = "snapshot_limit"
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
    max_symbols_per_connection = 1024
    """"A single connection can listen to a maximum of 1024 streams" (docs/protocols.md)."""
    control_interval = 0.5
    """Binance drops a connection that sends over 5 messages a second, pings and pongs included: SUBSCRIBEs go at
    2 a second, which leaves room for the keep-alive pings (at most 2 a second, config.MIN_SILENCE_TIMEOUT)."""
    listing_weight = 20
    """``GET /api/v3/exchangeInfo``'s weight."""

    def __init__(self, ws_url: str | None = None, rest_url: str | None = None, snapshot_limit: int = 1000) -> None:
        super().__init__(ws_url, rest_url)
        self.snapshot_limit = snapshot_limit
        self.snapshot_depth = snapshot_limit

    def snapshot_weight(self, depth: int | None = None) -> int:
        """``GET /api/v3/depth``'s weight by limit band (docs/protocols.md)."""
        return depth_weight(self.snapshot_limit if depth is None else depth)

    def first_snapshot_depth(self, served: int) -> int | None:
        return self.snapshot_limit if served <= 0 else first_snapshot_limit(served, self.snapshot_limit)

    @property
    def stream_url(self) -> str:
        return f"{self.ws_base}/stream"

    @staticmethod
    def stream_name(symbol: str) -> str:
        """``ETHBTC`` -> ``ethbtc@depth@100ms``: "All symbols for streams are lowercase"; a Unicode symbol is
        lower-cased the same way (``这是测试币456`` has no case and is unchanged). Where a stream name stands in a
        URL (``/ws/<name>``, ``/stream?streams=``) it is URL-encoded (:meth:`stream_path`); in a SUBSCRIBE it is JSON,
        UTF-8 as it is."""
        return f"{symbol.lower()}@depth@100ms"

    @classmethod
    def stream_path(cls, symbol: str) -> str:
        """The raw stream's path, URL-encoded (Binance's streams take URL-encoded URLs since 2025-12)."""
        return f"/ws/{quote(cls.stream_name(symbol), safe='@')}"

    def subscribe_messages(self, symbols: Sequence[str]) -> list[str]:
        streams = [self.stream_name(symbol) for symbol in symbols]
        return [
            json.dumps({"method": "SUBSCRIBE", "params": streams[start:start + STREAMS_PER_SUBSCRIBE],
                        "id": start // STREAMS_PER_SUBSCRIBE + 1}, ensure_ascii=False)
            for start in range(0, len(streams), STREAMS_PER_SUBSCRIBE)
        ]

    def snapshot_url(self, symbol: str, depth: int | None = None) -> str:
        # symbolStatus=TRADING: a symbol that has stopped trading answers -1220 rather than a book no one can trade
        # against. The symbol is URL-encoded: a Unicode one is sent as UTF-8 (docs/protocols.md).
        limit = self.snapshot_limit if depth is None else depth
        return (f"{self.rest_base}/api/v3/depth?symbol={quote(symbol, safe='')}&limit={limit}"
                f"&symbolStatus={TRADING}")

    @property
    def listing_url(self) -> str:
        # Every status, not symbolStatus=TRADING: a symbol in BREAK is still listed, and followed, to be served
        # again once it trades (the listing is read again every --listing-interval).
        return f"{self.rest_base}/api/v3/exchangeInfo?showPermissionSets=false"

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
        symbol = event.get("s")
        if type(symbol) is not str:
            raise BadMessage("wrong_symbol", f"{symbol!r:.40}", loses_data=False)
        try:
            first_id, final_id = parse_id(event.get("U"), "U"), parse_id(event.get("u"), "u")
            if first_id > final_id:
                raise BadMessage("bad_id", f"U {first_id} > u {final_id}", loses_data=True)
            (bids, ignored_bids), (asks, ignored_asks) = parse_levels(event.get("b")), parse_levels(event.get("a"))
            event_time = parse_id(event.get("E"), "E") / 1e3
        except BadMessage as error:
            error.symbol = symbol
            raise
        return BookDiff(
            first_id,
            final_id,
            event_time,
            bids,
            asks,
            ignored_bids + ignored_asks,
            symbol,
        )

    def unknown_symbol(self, status: int, body: bytes) -> bool:
        if status != 400:
            return False
        try:
            error = load_json(body, loses_data=False)
        except BadMessage:
            return False
        return type(error) is dict and error.get("code") in NOT_LISTED

    def parse_listing(self, body: bytes) -> Listing:
        symbols = load_object(body, loses_data=False).get("symbols")
        if type(symbols) is not list:
            raise BadMessage("unknown_shape", f"exchangeInfo has no symbols list: {body!r:.80}", loses_data=False)
        statuses = {entry["symbol"]: str(entry.get("status"))[:20] for entry in symbols
                    if type(entry) is dict and type(entry.get("symbol")) is str}
        return Listing(statuses, frozenset(symbol for symbol, status in statuses.items() if status == TRADING))
